"""Relevance judgements from the corpus and the metrics (benchmarks/relevance.py)."""

from __future__ import annotations

import pytest

from benchmarks.relevance import judged_sets, mrr_at, ndcg_at


def test_judged_sets_are_disjoint_and_well_formed() -> None:
    train, held_out = judged_sets()
    assert len(train) > 300 and len(held_out) > 80
    assert not {j.query for j in train} & {j.query for j in held_out}
    for judged in train[:50] + held_out[:50]:
        assert len(judged.candidates) == 20 and len(set(judged.candidates)) == 20
        relevant = judged.candidates[judged.relevant]
        assert judged.query not in relevant  # the summary line is not in its own body: no copy match
    assert judged_sets()[1] == held_out  # deterministic


def test_metrics_with_one_relevant_candidate() -> None:
    assert ndcg_at([0.9, 0.1, 0.2], 0) == 1.0 and mrr_at([0.9, 0.1, 0.2], 0) == 1.0
    assert ndcg_at([0.1, 0.9, 0.2], 2) == pytest.approx(0.6309, abs=1e-4) and mrr_at([0.1, 0.9, 0.2], 2) == 0.5
    assert ndcg_at([0.1, 0.9, 0.2], 0) == pytest.approx(0.5) and mrr_at([0.1, 0.9, 0.2], 0) == pytest.approx(1 / 3)
    assert ndcg_at([0.5, 0.5], 0) == pytest.approx(0.6309, abs=1e-4)  # a tie counts against the relevant one
    scores = [1.0] * 11 + [0.0]
    assert ndcg_at(scores, 11) == 0.0 and mrr_at(scores, 11) == 0.0  # ranked 12th: outside the top 10
