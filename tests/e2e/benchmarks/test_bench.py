"""The benchmark harness, end to end on the tiny models (seconds, not the real benchmark): every local
system, the decoder systems, the report and the curves. Its parts, by hand: tests/unit/benchmarks/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SMOKE_SYSTEMS = ["floor", "direct", "naive", "rerank-kit"]


def test_bench_runs_every_local_system_on_the_tiny_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--model-dir", str(tiny_model_dir), "--systems",
         ",".join(SMOKE_SYSTEMS), "--cells", "1,3;4,3", "--seconds", "2", "--waves", "1",
         "--min-requests", "2", "--direct-pairs", "6", "--peak-seconds", "0.3", "--work", str(tmp_path / "work"),
         "--out", str(out), "--no-quality", "--no-cache-bench", "--curves", "rerank-kit,rerank-kit-int8",
         "--curve-passages", "2,5", "--curve-lengths", "16,40"],
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


def test_bench_runs_the_decoder_systems_on_a_tiny_qwen3(tiny_qwen3_dir: Path, tmp_path: Path) -> None:
    """The Qwen3-Reranker row's code path: the model card's loop (card) and rerank-kit serving the model."""
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--model-dir", str(tiny_qwen3_dir), "--systems", "card,rerank-kit,direct",
         "--cells", "2,3", "--seconds", "2", "--waves", "1", "--min-requests", "2", "--peak-seconds", "0.3",
         "--work", str(tmp_path / "work"), "--out", str(out), "--no-quality", "--no-cache-bench", "--curves", ""],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["system"], r["concurrency"], r["docs"]) for r in rows] == [("card", 1, 3), ("rerank-kit", 2, 3)]
    for row in rows:  # direct (a cross-encoder baseline) is skipped for a decoder model
        assert row["errors"] == 0 and row["pairs_per_s"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"], row
        assert 0 < row["mfu"] < 1, row
