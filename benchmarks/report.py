"""Rows -> the markdown tables and the target checks of docs/BENCHMARKS.md."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass


@dataclass
class Row:
    model: str
    system: str
    docs: int
    concurrency: int
    requests: int
    pairs_per_s: float
    p50_ms: float
    p99_ms: float
    peak_rss_mb: float
    mfu: float
    errors: int = 0
    engine_busy: float | None = None  # rerank-kit only: share of the wall time its inference thread ran
    padding: float | None = None  # rerank-kit only: padded tokens / real tokens - 1

    def as_dict(self) -> dict:
        return asdict(self) | {"reported_pairs_per_s": self.reported_rate}

    @property
    def reported_rate(self) -> float | None:
        """Pairs/s, or None when any request failed: a server that drops requests is not fast."""
        return None if self.errors else self.pairs_per_s


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(rows: list[Row]) -> str:
    """One line per cell; a cell with failed requests shows its failure count and no throughput."""
    lines = ["| model | system | docs | c | requests | failed | pairs/s | p50 ms | p99 ms | peak RSS MB | MFU "
             "| engine busy | padding |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        rate = "-" if r.reported_rate is None else f"{r.reported_rate:.1f}"
        mfu = "-" if r.reported_rate is None else f"{r.mfu * 100:.1f}%"
        lines.append(f"| {r.model} | {r.system} | {r.docs} | {r.concurrency} | {r.requests} | {r.errors} | "
                     f"{rate} | {_ms(r.p50_ms)} | {_ms(r.p99_ms)} | {r.peak_rss_mb:.0f} | "
                     f"{mfu} | {_share(r.engine_busy)} | {_share(r.padding)} |")
    return "\n".join(lines)


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _find(rows: list[Row], model: str, system: str, docs: int, concurrency: int) -> Row | None:
    return next((r for r in rows if (r.model, r.system, r.docs, r.concurrency) == (model, system, docs,
                                                                                  concurrency)), None)


def targets(rows: list[Row], model: str, docs: int = 20, concurrency: int = 32) -> str:
    """The project's throughput and latency targets, each with the ratio measured in this run, or 'not measured'."""
    ours = _find(rows, model, "rerank-kit", docs, concurrency)
    checks: list[str] = []

    def ratio(system: str, label: str, goal: float, mine: Row | None = ours) -> None:
        peer = _find(rows, model, system, docs, concurrency if system != "direct" else 1)
        if peer is None and system == "direct":
            peer = _find(rows, model, system, docs, concurrency)
        if mine is None or peer is None:
            checks.append(f"- {label}: not measured in this run")
            return
        failed = [f"{r.system}: {r.errors} failed requests" for r in (mine, peer) if r.reported_rate is None]
        if failed:
            checks.append(f"- {label}: no ratio ({'; '.join(failed)})")
            return
        value = mine.pairs_per_s / peer.pairs_per_s
        verdict = "met" if value >= goal else f"missed by {(goal - value) / goal * 100:.0f}%"
        checks.append(f"- {label}: {mine.pairs_per_s:.1f} / {peer.pairs_per_s:.1f} pairs/s = "
                      f"**{value:.2f}x** (target >= {goal}x): {verdict}")

    where = f"{model}, c={concurrency} x {docs} passages"
    ratio("naive", f"rerank-kit (default) vs naive server ({where})", 3.0)
    ratio("infinity", f"rerank-kit (default) vs Infinity fp32 ({where})", 1.8)
    ratio("direct", f"rerank-kit (default) vs direct torch model rate ({where})", 0.9)
    ratio("infinity", f"rerank-kit int8 vs Infinity fp32 ({where})", 3.5,
          _find(rows, model, "rerank-kit-int8", docs, concurrency))
    single, direct = _find(rows, model, "rerank-kit", docs, 1), _find(rows, model, "direct", docs, 1)
    if single and direct and single.reported_rate is not None:
        verdict = "met" if single.p50_ms <= direct.p50_ms else f"missed by {single.p50_ms - direct.p50_ms:.0f} ms"
        checks.append(f"- c=1 latency ({model}, {docs} passages): rerank-kit (default) p50 {single.p50_ms:.0f} ms "
                      f"vs the direct torch call {direct.p50_ms:.0f} ms (target: no slower): {verdict}")
    else:
        checks.append("- c=1 latency: not measured in this run")
    ours_rows = [r for r in rows if r.model == model and r.system == "rerank-kit"]
    if len(ours_rows) > 1:
        low = min(ours_rows, key=lambda r: r.concurrency)
        high = max(ours_rows, key=lambda r: (r.concurrency, r.docs))
        checks.append(f"- one model copy: rerank-kit peak RSS {low.peak_rss_mb:.0f} MB after c={low.concurrency}, "
                      f"{high.peak_rss_mb:.0f} MB after c={high.concurrency} x {high.docs} "
                      f"({(high.peak_rss_mb / low.peak_rss_mb - 1) * 100:+.0f}%)")
    return "\n".join(checks)
