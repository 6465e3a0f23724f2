"""The scores a model returned recently, for the console's Thresholds view: a bounded ring of numbers, no text.

A ring of the last `size` calibrated scores (float64, the very numbers the API answered: 32 KiB at the default
4096) rather than a decaying histogram: its percentiles and what a threshold keeps are exact over a window a
person can reason about ("the last 4096 documents"), and it costs one array copy per request.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PERCENTILES = (5, 10, 25, 50, 75, 90, 95)
THRESHOLD_STEPS = 101  # what a threshold of 0.00, 0.01, ..., 1.00 keeps
HISTOGRAM_BINS = 20


class ScoreSketch:
    """The last `size` scores of one model, in [0, 1] (the sigmoid scores Dify's score_threshold compares)."""

    def __init__(self, size: int = 4096) -> None:
        self._ring = np.zeros(size, dtype=np.float64)
        self._next = 0
        self._filled = 0
        self.seen = 0  # every score ever added, the window being the last `size` of them

    def add(self, scores: Sequence[float] | np.ndarray) -> None:
        values = np.asarray(scores, dtype=np.float64).ravel()[-len(self._ring):]
        size = len(self._ring)
        end = self._next + len(values)
        if end <= size:
            self._ring[self._next:end] = values
        else:
            split = size - self._next
            self._ring[self._next:] = values[:split]
            self._ring[:end - size] = values[split:]
        self._next = end % size
        self._filled = min(size, self._filled + len(values))
        self.seen += len(np.asarray(scores).ravel())

    def values(self) -> np.ndarray:
        return self._ring[:self._filled].copy()

    def summary(self) -> dict[str, object]:
        """Count, percentiles, a histogram over [0, 1] and the share each threshold step keeps (score >= x,
        Dify's rule); empty lists when nothing was scored yet."""
        values = np.sort(self.values())
        if not len(values):
            return {"count": 0, "seen": self.seen, "percentiles": {}, "histogram": [], "keeps": []}
        steps = np.linspace(0.0, 1.0, THRESHOLD_STEPS)
        kept = len(values) - np.searchsorted(values, steps, side="left")
        histogram, _ = np.histogram(np.clip(values, 0.0, 1.0), bins=HISTOGRAM_BINS, range=(0.0, 1.0))
        return {"count": len(values), "seen": self.seen,
                "percentiles": {f"p{p}": round(float(np.percentile(values, p)), 6) for p in PERCENTILES},
                "histogram": histogram.tolist(), "keeps": [round(float(k) / len(values), 6) for k in kept]}
