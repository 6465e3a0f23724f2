"""The score cache benchmark end to end on the tiny model (seconds, not the real run): both servers, every
workload off and on, no failed request, the soak filling its bound and staying there, the chart drawn."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_the_cache_benchmark_runs_every_workload_and_the_soak(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cache"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.cache", "--model-dir", str(tiny_model_dir), "--seconds", "1.5",
         "--rounds", "1", "--soak-mib", "0.25", "--soak-fills", "3", "--work", str(tmp_path / "work"),
         "--out", str(out), "--chart", str(tmp_path / "soak.png")],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "cache.json").read_text())
    summary = result["throughput"]["summary"]
    assert set(summary) == {"unique", "half-repeated", "replay", "replay c=1"}
    for workload, row in summary.items():
        assert row["off_failed"] == row["on_failed"] == 0 and row["ratio"] > 0, (workload, row)
    assert summary["replay"]["ratio"] > 2  # answered from the cache
    soak = result["soak"]
    assert soak["failed"] == 0 and soak["pairs"] > soak["bound_entries"]
    assert max(s["entries"] for s in soak["samples"]) == soak["bound_entries"]
    assert max(s["cache_mb"] for s in soak["samples"]) <= 0.25
    assert (tmp_path / "soak.png").stat().st_size > 10_000
    assert "| replay c=1 |" in proc.stdout and "Soak:" in proc.stdout
