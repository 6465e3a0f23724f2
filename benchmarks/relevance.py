"""Relevance judgements made offline from the benchmark corpus, and the metrics over them.

A standard-library docstring is a summary line followed by its body. The query is the summary line
(as a search box would get it: "Return the greatest common divisor"), the one relevant passage is the body
(without that line, so the task is not a copy match), and the other candidates are the bodies of other
docstrings: half the nearest by word overlap (hard negatives, often a sibling method's body), half at
random. Docstrings split into training and held-out sets by a hash of the text, so the split does not
move when the corpus grows.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.workload import docstrings

_WORD = re.compile(r"[a-z]{3,}")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Judged:
    """One query and its candidates; `relevant` indexes the one relevant candidate."""

    query: str
    candidates: list[str]
    relevant: int


def _split_docstring(text: str) -> tuple[str, str] | None:
    parts = _SENTENCE_END.split(text, maxsplit=1)
    if len(parts) != 2:
        return None
    summary, body = parts
    if not 5 <= len(summary.split()) <= 25 or len(body.split()) < 25:
        return None
    return summary.rstrip("."), " ".join(body.split()[:140])  # ~180 tokens, as the throughput workload


def _held_out(text: str, share: float) -> bool:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < share


def judged_sets(candidates: int = 20, *, held_out_share: float = 0.2,
                seed: int = 0) -> tuple[list[Judged], list[Judged]]:
    """(training, held-out) judged queries, each with `candidates` passages (one relevant)."""
    by_body = {}  # a body shared by several docstrings (an inherited method's) is judged once
    for text in docstrings():
        if (split := _split_docstring(text)) and split[1] not in by_body:
            by_body[split[1]] = split
    items = list(by_body.values())
    bodies = [body for _, body in items]
    words = [set(_WORD.findall(body.lower())) for body in bodies]
    rng = random.Random(seed)
    train: list[Judged] = []
    test: list[Judged] = []
    hard = (candidates - 1) // 2
    for i, (summary, body) in enumerate(items):
        query_words = set(_WORD.findall(summary.lower())) | words[i]
        overlap = sorted((len(query_words & words[j]) / (1 + len(words[j])) ** 0.5, j)
                         for j in range(len(items)) if j != i)
        nearest = [j for _, j in overlap[-hard:]]
        others = [j for j in range(len(items)) if j != i and j not in nearest]
        chosen = nearest + rng.sample(others, candidates - 1 - len(nearest))
        passages = [bodies[j] for j in chosen]
        slot = rng.randrange(candidates)
        passages.insert(slot, body)
        (test if _held_out(summary, held_out_share) else train).append(Judged(summary, passages, slot))
    return train, test


def ndcg_at(scores: Sequence[float], relevant: int, k: int = 10) -> float:
    """nDCG@k with one relevant candidate: 1 / log2(1 + its rank) when ranked in the top k."""
    rank = _rank(scores, relevant)
    return 1.0 / math.log2(1 + rank) if rank <= k else 0.0


def mrr_at(scores: Sequence[float], relevant: int, k: int = 10) -> float:
    rank = _rank(scores, relevant)
    return 1.0 / rank if rank <= k else 0.0


def _rank(scores: Sequence[float], relevant: int) -> int:
    """1-based rank of the relevant candidate; ties count against it (no credit for a constant scorer)."""
    return 1 + sum(1 for i, s in enumerate(scores) if i != relevant and s >= scores[relevant])
