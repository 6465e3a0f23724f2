"""The benchmark harness, end to end on the tiny model (seconds, not the real benchmark), and its parts
whose numbers can be checked by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.flops import flops_per_pair
from benchmarks.loadgen import run_load
from benchmarks.models import ModelShape
from benchmarks.report import Row, percentile, table, targets
from benchmarks.workload import Request, make_passages, make_queries, make_requests

MINILM_L6 = ModelShape(layers=6, hidden=384, intermediate=1536, heads=12)
XLMR_BASE = ModelShape(layers=12, hidden=768, intermediate=3072, heads=12)
SMOKE_SYSTEMS = ["floor", "direct", "naive", "rerank-kit"]


def test_flops_per_pair_by_hand() -> None:
    # per layer at T=256: 8*T*h^2 + 4*T*h*i + 4*T^2*h; then pooler 2*h^2 and head 2*h
    per_layer = 8 * 256 * 384**2 + 4 * 256 * 384 * 1536 + 4 * 256**2 * 384
    assert flops_per_pair(MINILM_L6, 256) == 6 * per_layer + 2 * 384**2 + 2 * 384
    assert flops_per_pair(MINILM_L6, 256) == pytest.approx(6.04e9, rel=0.01)  # ~6 GFLOP, the known figure
    assert flops_per_pair(XLMR_BASE, 256) == pytest.approx(45.9e9, rel=0.01)  # bge-reranker-base: ~46


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0


def test_a_cell_with_failed_requests_reports_no_throughput() -> None:
    def row(system: str, rate: float, errors: int = 0) -> Row:
        return Row("m", system, 20, 32, 60, rate, 900.0, 1500.0, 700.0, 0.2, errors)

    rows = [row("rerank-kit", 30.0, errors=3), row("infinity", 12.0), row("naive", 8.0)]
    lines = table(rows).splitlines()
    assert lines[2].startswith("| m | rerank-kit | 20 | 32 | 60 | 3 | - |"), lines[2]
    assert lines[3].startswith("| m | infinity | 20 | 32 | 60 | 0 | 12.0 |"), lines[3]
    verdicts = targets(rows, "m")
    assert ("rerank-kit (default) vs Infinity fp32 (m, c=32 x 20 passages): no ratio (rerank-kit: 3 failed requests)"
            in verdicts)
    assert "x**" not in verdicts  # no ratio at all from a cell that dropped requests
    assert rows[0].as_dict()["reported_pairs_per_s"] is None
    assert targets([row("rerank-kit", 30.0), row("infinity", 12.0)], "m").count("**2.50x**") == 1


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


def test_load_generator_refuses_non_loopback_targets() -> None:
    with pytest.raises(ValueError, match="loopback"):
        run_load("http://192.0.2.1:8086/rerank", lambda r: {}, [Request("q", ["d"])], concurrency=1,
                 max_seconds=1)


def test_bench_runs_every_local_system_on_the_tiny_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--model-dir", str(tiny_model_dir), "--systems",
         ",".join(SMOKE_SYSTEMS), "--cells", "1,3;4,3", "--seconds", "2", "--waves", "1",
         "--min-requests", "2", "--direct-pairs", "6", "--peak-seconds", "0.3", "--work", str(tmp_path / "work"),
         "--out", str(out), "--no-quality", "--curves", "rerank-kit,rerank-kit-int8", "--curve-passages", "2,5",
         "--curve-lengths", "16,40"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert [r["system"] for r in rows] == ["floor", "direct", "direct-unsorted", "direct-2k-tokens", "naive",
                                           "naive", "rerank-kit", "rerank-kit"]
    assert {(r["system"], r["concurrency"]) for r in rows if r["system"] in ("naive", "rerank-kit")} == {
        ("naive", 1), ("naive", 4), ("rerank-kit", 1), ("rerank-kit", 4)}
    for row in rows:
        assert row["errors"] == 0 and row["pairs_per_s"] > 0, row
        assert row["peak_rss_mb"] > 50 and 0 < row["mfu"] < 1, row
        if row["system"] not in ("direct-unsorted", "direct-2k-tokens"):  # throughput-only rows
            assert row["requests"] >= 1 and 0 < row["p50_ms"] <= row["p99_ms"], row
    for row in rows[-2:]:  # rerank-kit's own profile, read from its /metrics
        assert 0 < row["engine_busy"] <= 1.05 and row["padding"] >= 0, row
    assert results["machine"]["matmul_peak_gflops"] > 0
    report = (out / "results.md").read_text()
    assert "| model | system | docs | c |" in report and "one model copy" in report
    assert f"| {tiny_model_dir.name} | rerank-kit | 3 | 4 |" in report
    points = json.loads((out / "curves.json").read_text())
    assert {(p["system"], p["axis"], p["x"]) for p in points} == {
        (system, axis, x) for system in ("rerank-kit", "rerank-kit-int8")
        for axis, xs in (("passages", (2, 5)), ("length", (16, 40))) for x in xs}
    assert all(p["errors"] == 0 and p["pairs_per_s"] > 0 and p["p50_ms"] > 0 for p in points), points
    for chart in ("bench-passages.png", "bench-length.png"):
        assert (out / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| rerank-kit-int8 | length | 40 |" in report


def test_decoder_flops_per_pair_by_hand() -> None:
    """Qwen3-Reranker-0.6B's shape: GQA (16 query, 8 key-value heads of 128) and a gated feed-forward."""
    qwen3 = ModelShape(layers=28, hidden=1024, intermediate=3072, heads=16, kv_heads=8, head_dim=128, decoder=True)
    t, a, kv = 256, 16 * 128, 8 * 128
    per_layer = 4 * t * 1024 * a + 4 * t * 1024 * kv + 6 * t * 1024 * 3072 + 4 * t * t * a
    assert flops_per_pair(qwen3, t) == 28 * per_layer + 4 * 1024
    assert flops_per_pair(qwen3, t) == pytest.approx(2 * 0.44e9 * t, rel=0.15)  # ~2 x non-embedding params x T


def test_bench_runs_the_decoder_systems_on_a_tiny_qwen3(tiny_qwen3_dir: Path, tmp_path: Path) -> None:
    """The Qwen3-Reranker row's code path: the model card's loop (card) and rerank-kit serving the model."""
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--model-dir", str(tiny_qwen3_dir), "--systems", "card,rerank-kit,direct",
         "--cells", "2,3", "--seconds", "2", "--waves", "1", "--min-requests", "2", "--peak-seconds", "0.3",
         "--work", str(tmp_path / "work"), "--out", str(out), "--no-quality", "--curves", ""],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["system"], r["concurrency"], r["docs"]) for r in rows] == [("card", 1, 3), ("rerank-kit", 2, 3)]
    for row in rows:  # direct (a cross-encoder baseline) is skipped for a decoder model
        assert row["errors"] == 0 and row["pairs_per_s"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"], row
        assert 0 < row["mfu"] < 1, row
