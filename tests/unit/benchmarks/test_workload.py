"""The benchmark's workload (benchmarks/workload.py): passages, queries and requests."""

from __future__ import annotations

from pathlib import Path

from benchmarks.workload import make_passages, make_queries, make_requests


def test_workload_passages_and_requests(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    passages = make_passages(tokenizer, 30)
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in passages]
    assert len(set(passages)) == 30
    assert max(lengths) <= 220 and min(lengths) >= 100, lengths  # cut at a word boundary below the target
    assert max(lengths) - min(lengths) > 20  # lengths vary, as retrieved chunks do
    queries = make_queries(5)
    assert all(q.startswith("How do I ") and q.endswith("?") for q in queries)
    requests = make_requests(passages, queries, 20, 3)
    assert [r.pairs for r in requests] == [20, 20, 20]
    assert requests[1].documents[0] == passages[20] and requests[1].query == queries[1]
