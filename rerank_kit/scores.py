"""The two small score rules every part shares: the sigmoid calibration and the ranking order.

Here once, for the server's answers, the RAGFlow class, the hybrid-score helpers, the tuner and the
benchmarks alike (plain Python on sequences: the vendored core never needs numpy).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def sigmoid(logit: float) -> float:
    """1 / (1 + e^-x), without overflow for large |x|: FlagReranker's `normalize=True`, P(relevant)."""
    if logit >= 0:
        return 1.0 / (1.0 + math.exp(-logit))
    exp = math.exp(logit)
    return exp / (1.0 + exp)


def sigmoids(logits: Iterable[float]) -> list[float]:
    return [sigmoid(float(logit)) for logit in logits]


def ranking(scores: Sequence[float], top_n: int | None = None) -> list[int]:
    """Indices by score, highest first; ties keep the input (retrieval) order; top_n <= 0 or None keeps all."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    return order[:top_n] if top_n and top_n > 0 else order
