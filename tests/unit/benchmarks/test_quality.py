"""The quality benchmark (benchmarks/quality.py): the evaluation of every serving path through the server's own
ONNX backend (on the tiny model: the code path, not figures). Its judgements and metrics: test_relevance.py."""

from __future__ import annotations

from pathlib import Path

from benchmarks.quality import evaluate, table


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
