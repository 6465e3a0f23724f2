"""The quality benchmark's parts: relevance judgements from the corpus, the metrics, and the evaluation of
every serving path through the server's own ONNX backend (on the tiny model: the code path, not figures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.quality import evaluate, table
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


def test_every_serving_path_is_evaluated(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = evaluate(tiny_model_dir, tmp_path, queries=6)
    paths = result["paths"]
    assert list(paths) == ["torch fp32", "ONNX fp32", "ONNX int8"]
    assert paths["torch fp32"]["top1_agreement"] == 1.0 and paths["torch fp32"]["max_score_diff"] == 0.0
    assert result["queries"] == 6
    assert paths["ONNX fp32"]["max_score_diff"] < 1e-4 and paths["ONNX fp32"]["top1_agreement"] == 1.0
    assert paths["ONNX int8"]["mean_logit_error"] > paths["ONNX fp32"]["mean_logit_error"]
    assert all(0 <= m["ndcg@10"] <= 1 and 0 <= m["mrr@10"] <= m["ndcg@10"] + 1e-9 for m in paths.values())
    sweep = result["sweep"]
    assert {"nothing (all int8)", "embeddings", "layer 0", "pooler + head"} <= set(sweep)
    assert "| ONNX int8 |" in table(result) and "| layer 0 |" in table(result)
