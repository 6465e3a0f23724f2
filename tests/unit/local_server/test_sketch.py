"""The console's score sketch (local_server/sketch.py): bounded, the last `size` scores, exact percentiles and the
share a Dify score_threshold keeps (score >= x)."""

from __future__ import annotations

import numpy as np

from local_server.sketch import HISTOGRAM_BINS, THRESHOLD_STEPS, ScoreSketch


def test_it_keeps_only_the_last_scores_however_they_arrive() -> None:
    sketch = ScoreSketch(size=8)
    sketch.add([0.1, 0.2, 0.3])
    sketch.add(np.arange(10) / 10)  # more than the ring in one go
    assert sorted(sketch.values()) == [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    sketch.add([1.0, 0.0, 0.05])  # wraps around
    assert sorted(sketch.values()) == [0.0, 0.05, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert sketch.seen == 16 and sketch.values().nbytes == 8 * 8


def test_percentiles_histogram_and_what_a_threshold_keeps_are_exact() -> None:
    scores = np.random.default_rng(7).random(500)
    sketch = ScoreSketch(size=4096)
    sketch.add(scores)
    summary = sketch.summary()
    assert summary["count"] == 500
    assert summary["percentiles"]["p50"] == round(float(np.percentile(scores, 50)), 6)
    assert summary["percentiles"]["p95"] == round(float(np.percentile(scores, 95)), 6)
    assert len(summary["histogram"]) == HISTOGRAM_BINS and sum(summary["histogram"]) == 500
    assert len(summary["keeps"]) == THRESHOLD_STEPS
    for step, share in enumerate(summary["keeps"]):
        assert share == round(float(np.mean(scores >= step / 100)), 6)
    assert summary["keeps"][0] == 1.0


def test_a_score_equal_to_the_threshold_is_kept_as_dify_keeps_it() -> None:
    sketch = ScoreSketch()
    sketch.add([0.5, 0.25, 0.75, 0.49])
    assert sketch.summary()["keeps"][50] == 0.5


def test_nothing_scored_yet_is_an_empty_summary() -> None:
    assert ScoreSketch().summary() == {"count": 0, "seen": 0, "percentiles": {}, "histogram": [], "keeps": []}
