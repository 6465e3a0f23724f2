"""Cost curves: pairs/s and p50 latency against passages per request (10..500) and against passage length
(64..512 tokens), for rerank-kit as started with no options, its int8 path and Infinity, drawn as PNG charts.

One request at a time (c=1): the latency a user waits for and the rate of one stream of requests, so a
reader can place their own workload on the x axis. A point with any failed request is drawn as missing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks import peers
from benchmarks.loadgen import run_load
from benchmarks.workload import make_passages, make_queries, make_requests

PASSAGES = (10, 20, 50, 100, 200, 500)
LENGTHS = (64, 128, 256, 512)
SYSTEMS = ("rerank-kit", "rerank-kit-int8", "infinity")
_LABELS = {"rerank-kit": "rerank-kit (default: ONNX fp32)", "rerank-kit-int8": "rerank-kit int8",
           "infinity": "Infinity (torch fp32)"}
_PASSAGE_TOKENS = 180  # the passages-per-request curve's passage length (the RAG chunk of the main table)


@dataclass
class Point:
    system: str
    axis: str  # "passages" or "length"
    x: int
    requests: int
    errors: int
    pairs_per_s: float | None  # None when any request failed
    p50_ms: float | None


def measure(model_dir: Path, tokenizer, work: Path, out: Path, *, systems=SYSTEMS, passages=PASSAGES,
            lengths=LENGTHS, min_pairs: int = 80, seconds: float = 120.0) -> list[Point]:
    """Every system over both axes; each point sends max(2, min_pairs / passages) requests, one at a time."""
    queries = make_queries(16)
    pools = {"passages": make_passages(tokenizer, max(passages) * 2)}
    for length in lengths:
        pools[length] = make_passages(tokenizer, 80, seed=length, tokens=(int(length * 0.85), length))
    points = []
    for system in systems:
        spec = peers.server_spec(system, work)
        with peers.serve(spec, model_dir, out / f"curves-{system}.log",
                         cwd=Path(__file__).resolve().parent.parent) as server:
            run_load(server.rerank_url, spec.body, make_requests(pools["passages"], queries, 20, 2),
                     concurrency=1, max_seconds=seconds)  # warm-up, not recorded
            plan = [("passages", n, pools["passages"], n) for n in passages]
            plan += [("length", length, pools[length], 20) for length in lengths]
            for axis, x, pool, docs in plan:
                requests = make_requests(pool, queries, docs, max(2, math.ceil(min_pairs / docs)))
                result = run_load(server.rerank_url, spec.body, requests, concurrency=1, max_seconds=seconds)
                ok = not result.errors
                p50 = sorted(result.latencies)[(len(result.latencies) - 1) // 2] * 1000
                points.append(Point(system, axis, x, len(result.latencies) + len(result.errors), len(result.errors),
                                    result.pairs / result.seconds if ok else None, p50 if ok else None))
                print(f"# curve {system} {axis}={x}: {points[-1].pairs_per_s or 0:.1f} pairs/s, "
                      f"p50 {points[-1].p50_ms or 0:.0f} ms, {len(result.errors)} failed", flush=True)
    return points


def draw(points: list[Point], out: Path, title: str) -> list[Path]:
    """docs-ready PNGs: one per axis, pairs/s on the left, p50 latency (log scale) on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for axis, xlabel, name in (("passages", f"passages per request (~{_PASSAGE_TOKENS} tokens each)",
                                "bench-passages.png"),
                               ("length", "passage length, tokens (20 passages a request)", "bench-length.png")):
        fig, (rate_ax, latency_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
        for system in dict.fromkeys(p.system for p in points):
            mine = sorted((p for p in points if p.system == system and p.axis == axis), key=lambda p: p.x)
            xs = [p.x for p in mine]
            rate_ax.plot(xs, [p.pairs_per_s if p.pairs_per_s is not None else math.nan for p in mine], "o-",
                         label=_LABELS.get(system, system))
            latency_ax.plot(xs, [p.p50_ms / 1000 if p.p50_ms is not None else math.nan for p in mine], "o-",
                            label=_LABELS.get(system, system))
        for ax in (rate_ax, latency_ax):
            ax.set_xscale("log" if axis == "passages" else "linear")
            ax.set_xlabel(xlabel)
            ax.grid(True, which="both", alpha=0.3)
        rate_ax.set_ylabel("pairs/s (one request at a time)")
        rate_ax.set_ylim(bottom=0)
        latency_ax.set_ylabel("p50 latency per request, s")
        latency_ax.set_yscale("log")
        for limit, label in ((5, "Dify TEI provider timeout"), (10, "RAGFlow add-model check")):
            latency_ax.axhline(limit, color="grey", linestyle="--", linewidth=0.8)
            latency_ax.annotate(label, (latency_ax.get_xlim()[0], limit), fontsize=7, va="bottom", color="grey")
        rate_ax.legend(fontsize=8)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        path = out / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def table(points: list[Point]) -> str:
    rows = ["| system | axis | x | requests | failed | pairs/s | p50 ms |", "|---|---|---:|---:|---:|---:|---:|"]
    for p in points:
        rate = "-" if p.pairs_per_s is None else f"{p.pairs_per_s:.1f}"
        p50 = "-" if p.p50_ms is None else f"{p.p50_ms:.0f}"
        rows.append(f"| {p.system} | {p.axis} | {p.x} | {p.requests} | {p.errors} | {rate} | {p50} |")
    return "\n".join(rows) + "\n"


def as_dicts(points: list[Point]) -> list[dict]:
    return [asdict(p) for p in points]
