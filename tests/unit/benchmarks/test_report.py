"""The benchmark report's numbers (benchmarks/report.py): percentiles, and a cell with failed requests."""

from __future__ import annotations

from benchmarks.report import Row, percentile, table, targets


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
