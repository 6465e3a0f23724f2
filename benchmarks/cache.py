"""The score cache's run (part of `make bench`; alone: `python -m benchmarks.cache`): throughput and p50 with
the cache off and on, for three workloads of 20-passage requests on the MiniLM-L6 cross-encoder, in one run:

- unique: no pair is ever repeated (what the cache costs: its keys, its lookups);
- half-repeated: half of each request's pairs were sent before (its query with half of its passages, untimed
  before the cell: a user refining a question, an agent retrieving again);
- replay: the same request again and again ("regenerate", evaluation loops); also alone (c=1) for its latency.

The two servers (one with RERANK_CACHE_BYTES=0, one as shipped) run side by side and the cells alternate
off, on, off, on, each round with requests no earlier round sent. Then a soak: unique pairs past a small
bound, the server's RSS and the cache's bytes sampled each second (a chart), to show memory flat at the bound.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from benchmarks import peers
from benchmarks.loadgen import run_load
from benchmarks.models import build_model
from benchmarks.report import median
from benchmarks.workload import Request, make_passages, make_queries
from local_server.settings import Settings

WORKLOADS = ("unique", "half-repeated", "replay")
PARTS = ("throughput", "soak")
DOCS = 20
# The targets of the issue that asked for the cache (docs/BENCHMARKS.md): overhead, gain, a hit's latency.
MAX_OVERHEAD = 0.02
MIN_HALF_REPEATED_GAIN = 1.8
MAX_REPLAY_P50_MS = 10.0


def requests_for(workload: str, passages: list[str], query: str, count: int) -> list[Request]:
    """`count` requests of DOCS passages; `query` makes this round's own (no earlier round's pair repeats)."""
    def window(start: int) -> list[str]:
        return [passages[(start + i) % len(passages)] for i in range(DOCS)]

    if workload == "replay":
        return [Request(query, window(0))] * count
    return [Request(f"{query} (asked {i})", window(i * DOCS)) for i in range(count)]  # every pair new


def primers(workload: str, requests: list[Request]) -> list[Request]:
    """What is sent (untimed) before a cell: for half-repeated, each request's query with the first half of its
    passages, so that exactly half of the timed pairs were seen before (a user refining a question, an agent
    retrieving again, with a different half of the chunks)."""
    if workload != "half-repeated":
        return []
    return [Request(r.query, r.documents[:DOCS // 2]) for r in requests]


def repeated_share(workload: str, requests: list[Request]) -> float:
    """The share of the timed requests' pairs that an earlier request (a primer included) sent."""
    seen = {(r.query, d) for r in primers(workload, requests) for d in r.documents}
    repeated = total = 0
    for request in requests:
        for document in request.documents:
            repeated += (request.query, document) in seen
            seen.add((request.query, document))
            total += 1
    return repeated / total


def body(request: Request) -> dict:
    return {"query": request.query, "documents": request.documents, "return_documents": False}


def cell(url: str, workload: str, requests: list[Request], concurrency: int, seconds: float, *,
         cached: bool) -> dict:
    if cached and (primed := primers(workload, requests)):  # without a cache they would change nothing
        run_load(url, body, primed, concurrency=concurrency, max_seconds=3600)
    result = run_load(url, body, requests, concurrency=concurrency, max_seconds=seconds)
    failed = len(result.errors)
    return {"pairs_per_s": None if failed else result.pairs / result.seconds,
            "p50_ms": median(result.latencies) * 1000, "requests": len(result.latencies), "failed": failed}


@contextlib.contextmanager
def servers(model_dir: Path, work: Path, out: Path, **settings: str) -> Iterator[dict[str, peers.RunningServer]]:
    """rerank-kit with the cache off and as shipped (on), side by side."""
    with contextlib.ExitStack() as stack:
        running = {}
        shipped = str(Settings.model_fields["cache_bytes"].default)
        for state, cache in (("off", {"cache_bytes": "0"}), ("on", {"cache_bytes": shipped})):
            spec = peers.rerank_kit_spec(f"rerank-kit-cache-{state}", work, **{**settings, **cache})
            running[state] = stack.enter_context(peers.serve(spec, model_dir, out / f"cache-{state}.log"))
        yield running


def measure(model_dir: Path, work: Path, out: Path, *, concurrency: int = 8, seconds: float = 30.0,
            rounds: int = 2) -> dict:
    """Each workload's cells, off and on alternating for `rounds` rounds, and their medians."""
    from transformers import AutoTokenizer

    passages = make_passages(AutoTokenizer.from_pretrained(model_dir), 400)
    queries = make_queries(len(WORKLOADS) * rounds * 3 + 1)
    machinery = machinery_us(passages)  # before the servers start: on a quiet machine
    cells: dict[str, dict[str, list[dict]]] = {w: {"off": [], "on": []} for w in (*WORKLOADS, "replay c=1")}
    shares = {}
    with servers(model_dir, work, out) as running:
        warm = Request(queries[-1], passages[-DOCS:])
        for server in running.values():
            run_load(server.rerank_url, body, [warm] * 2, concurrency=1, max_seconds=seconds)
        for round_index in range(rounds):
            for index, workload in enumerate(WORKLOADS):
                for state in ("off", "on"):
                    query = queries[(round_index * len(WORKLOADS) + index) * 3 + (state == "on")]
                    requests = requests_for(workload, passages, query, _enough(cells[workload]["off"], seconds))
                    shares[workload] = repeated_share(workload, requests)
                    url = running[state].rerank_url
                    cached = state == "on"
                    cells[workload][state].append(cell(url, workload, requests, concurrency, seconds,
                                                       cached=cached))
                    if workload == "replay":
                        cells["replay c=1"][state].append(cell(url, workload, requests, 1, seconds / 2,
                                                               cached=cached))
                    print(f"# cache {state:3} {workload:13} round {round_index + 1}: {cells[workload][state][-1]}",
                          flush=True)
    return {"concurrency": concurrency, "seconds": seconds, "rounds": rounds, "docs": DOCS, "machinery_us": machinery,
            "repeated_share": shares, "cells": cells, "summary": summarise(cells)}


def _enough(off_cells: list[dict], seconds: float) -> int:
    """Requests for a cell: three times what the cache-off server answered in as long (primers cost time)."""
    if not off_cells or off_cells[-1]["pairs_per_s"] is None:
        return 400
    return max(32, int(off_cells[-1]["pairs_per_s"] * seconds * 3 / DOCS))


def machinery_us(passages: list[str], requests: int = 2000) -> float:
    """What the cache adds to a request that misses, measured without a model: keys for DOCS passages, the
    lookups, the flight and the stores, minus the same request's path with no cache (microseconds)."""
    import asyncio

    import numpy as np

    from local_server.score_cache import ScoreCache

    cache = ScoreCache.from_settings(Settings(model="unused"))
    assert cache is not None
    options = {"truncate": True, "direction": "right", "max_tokens_per_doc": None, "max_chunks_per_doc": 1,
               "instruction": None}

    async def compute(documents: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(len(documents)), np.zeros(len(documents), dtype=np.int64)

    async def timed(cached: bool) -> float:
        started = time.perf_counter()
        for i in range(requests):
            documents = [passages[(i * DOCS + j) % len(passages)] for j in range(DOCS)]
            if cached:
                keys = cache.keys(b"model identity", f"query {i}", documents, options)
                await cache.scores("model", keys, documents, compute)
            else:
                await compute(documents)
        return (time.perf_counter() - started) / requests * 1e6

    return asyncio.run(timed(True)) - asyncio.run(timed(False))


def summarise(cells: dict[str, dict[str, list[dict]]]) -> dict[str, dict]:
    """Per workload: the median pairs/s and p50 off and on, and the median of the rounds' on/off; None where a
    cell had failures."""
    summary = {}
    for workload, states in cells.items():
        row: dict[str, float | None] = {}
        for state, runs in states.items():
            rates = [r["pairs_per_s"] for r in runs]
            row[f"{state}_pairs_per_s"] = None if None in rates else median(rates)
            row[f"{state}_p50_ms"] = median([r["p50_ms"] for r in runs])
            row[f"{state}_failed"] = sum(r["failed"] for r in runs)
        # each round's on/off (the two cells ran back to back, on the machine as it was then), their median
        paired = [on["pairs_per_s"] / off["pairs_per_s"] for off, on in zip(states["off"], states["on"], strict=True)
                  if off["pairs_per_s"] and on["pairs_per_s"]]
        row["ratio"] = median(paired) if len(paired) == len(states["on"]) and paired else None
        summary[workload] = row
    return summary


def table(result: dict) -> str:
    lines = [f"c={result['concurrency']} x {result['docs']} passages (replay also c=1), {result['seconds']:.0f} s "
             f"per cell, median of {result['rounds']} rounds; pairs/s counts every pair answered",
             "",
             "| workload | repeated pairs | off pairs/s | on pairs/s | on / off | off p50 ms | on p50 ms | failed |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for workload, row in result["summary"].items():
        share = result["repeated_share"].get(workload.split()[0], 0.0)

        def rate(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.1f}"

        ratio = "n/a" if row["ratio"] is None else f"{row['ratio']:.3f}"
        lines.append(f"| {workload} | {share:.0%} | {rate(row['off_pairs_per_s'])} | {rate(row['on_pairs_per_s'])} "
                     f"| {ratio} | {row['off_p50_ms']:.1f} | {row['on_p50_ms']:.1f} | "
                     f"{row['off_failed'] + row['on_failed']} |")
    off = [run["pairs_per_s"] for workload in ("unique", "half-repeated") for run in result["cells"][workload]["off"]]
    if None not in off:
        lines += ["", f"The same cache-off server, same workload shape, round to round: {min(off):.1f} to "
                      f"{max(off):.1f} pairs/s ({(max(off) - min(off)) / median(off):.0%} of the median): the noise "
                      "an on/off ratio of one round carries on this machine."]
    alone_ms = result["summary"]["replay c=1"]["off_p50_ms"]
    lines += ["", f"The cache's own work on a request that misses (keys, lookups, the flight, the stores; no model): "
                  f"{result['machinery_us']:.0f} us per {result['docs']}-passage request, "
                  f"{result['machinery_us'] / (alone_ms * 1000):.3%} of one such request's p50 alone with the cache "
                  "off."]
    return "\n".join(lines) + "\n\n" + verdicts(result["summary"]) + "\n"


def verdicts(summary: dict[str, dict]) -> str:
    unique, half, alone = summary["unique"]["ratio"], summary["half-repeated"]["ratio"], summary["replay c=1"]
    checks = [
        ("no repetition: within 2% of off", unique is not None and unique >= 1 - MAX_OVERHEAD, unique),
        ("half repeated: at least 1.8x off", half is not None and half >= MIN_HALF_REPEATED_GAIN, half),
        ("replayed request alone: p50 under 10 ms", alone["on_p50_ms"] < MAX_REPLAY_P50_MS, alone["on_p50_ms"])]
    return "\n".join(f"- {name}: {'met' if met else 'NOT met'} ({value if value is None else round(value, 3)})"
                     for name, met, value in checks)


def soak(model_dir: Path, work: Path, out: Path, *, bound_mib: float = 4.0, fills: float = 6.0,
         concurrency: int = 8) -> dict:
    """Unique short pairs until `fills` times the bound's entries were sent; RSS and cache bytes each second."""
    from transformers import AutoTokenizer

    from local_server.score_cache import ENTRY_BYTES

    entries = int(bound_mib * 2**20) // ENTRY_BYTES
    passages = make_passages(AutoTokenizer.from_pretrained(model_dir), 2000, tokens=(16, 32))
    requests = requests_for("unique", passages, "soak", int(entries * fills / DOCS) + 1)
    spec = peers.rerank_kit_spec("rerank-kit-soak", work, cache_bytes=str(int(bound_mib * 2**20)))
    samples: list[dict] = []
    with peers.serve(spec, model_dir, out / "cache-soak.log") as server:
        import psutil

        process, stop = psutil.Process(server.pid), threading.Event()
        started = time.monotonic()

        def sample() -> None:
            metrics = httpx.get(server.base_url + "/metrics", timeout=10).text
            samples.append({"s": time.monotonic() - started, "rss_mb": process.memory_info().rss / 2**20,
                            "cache_mb": _metric(metrics, "rerank_cache_bytes") / 2**20,
                            "entries": _metric(metrics, "rerank_cache_entries")})

        def every_second() -> None:
            while not stop.wait(1.0):
                sample()

        sampler = threading.Thread(target=every_second, daemon=True)
        sampler.start()
        load = run_load(server.rerank_url, body, requests, concurrency=concurrency, max_seconds=3600)
        stop.set()
        sampler.join()
        sample()  # the end state, however short the run
    full = next((s for s in samples if s["entries"] >= entries), samples[-1])
    return {"bound_mib": bound_mib, "bound_entries": entries, "pairs": load.pairs, "failed": len(load.errors),
            "seconds": load.seconds, "samples": samples, "rss_at_bound_mb": full["rss_mb"],
            "rss_end_mb": samples[-1]["rss_mb"], "filled_at_s": full["s"]}


def _metric(text: str, name: str) -> float:
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


def soak_table(result: dict) -> str:
    return (f"Soak: {result['pairs']} unique pairs ({result['failed']} failed requests) against a "
            f"{result['bound_mib']} MiB bound ({result['bound_entries']} entries), full after "
            f"{result['filled_at_s']:.0f} s: RSS {result['rss_at_bound_mb']:.1f} MiB when it filled, "
            f"{result['rss_end_mb']:.1f} MiB at the end ({result['rss_end_mb'] - result['rss_at_bound_mb']:+.1f} "
            "MiB while it kept evicting).\n")


def chart(result: dict, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = [s["s"] for s in result["samples"]]
    fig, rss = plt.subplots(figsize=(7, 3.2))
    rss.plot(seconds, [s["rss_mb"] for s in result["samples"]], color="tab:blue", label="server RSS")
    rss.set_xlabel("seconds of unique traffic")
    rss.set_ylabel("RSS (MiB)", color="tab:blue")
    cache = rss.twinx()
    cache.plot(seconds, [s["cache_mb"] for s in result["samples"]], color="tab:orange", label="score cache")
    cache.axhline(result["bound_mib"], color="tab:orange", linestyle=":", linewidth=1)
    cache.set_ylabel("score cache (MiB)", color="tab:orange")
    cache.set_ylim(0, result["bound_mib"] * 1.3)
    rss.set_title(f"Score cache soak: {result['pairs']} unique pairs, {result['bound_mib']} MiB bound")
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)


def run(model: Path, work: Path, out: Path, *, seconds: float, rounds: int, soak_mib: float, soak_fills: float,
        chart_path: Path | None, parts: tuple[str, ...] = PARTS) -> str:
    """The parts asked for on the cross-encoder in `model`; cache.json in `out`; the tables as markdown."""
    out.mkdir(parents=True, exist_ok=True)
    found, report = {}, ""
    if "throughput" in parts:
        found["throughput"] = measure(model, work, out, seconds=seconds, rounds=rounds)
        report += table(found["throughput"]) + "\n"
    if "soak" in parts:
        found["soak"] = soak(model, work, out, bound_mib=soak_mib, fills=soak_fills)
        report += soak_table(found["soak"])
        if chart_path is not None:
            chart(found["soak"], chart_path)
    (out / "cache.json").write_text(json.dumps(found, indent=1))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cache", description=__doc__.split("\n\n")[0])
    work = Path(__file__).resolve().parent / ".work"
    parser.add_argument("--work", type=Path, default=work, help="models and caches")
    parser.add_argument("--out", type=Path, default=work / "results" / "cache")
    parser.add_argument("--model-dir", type=Path, help="a cross-encoder folder (default: the MiniLM-L6 built here)")
    parser.add_argument("--seconds", type=float, default=30.0, help="time budget of one cell")
    parser.add_argument("--rounds", type=int, default=2, help="off/on rounds per workload (medians)")
    parser.add_argument("--parts", type=lambda text: tuple(text.split(",")), default=PARTS,
                        help=f"what to run, of {','.join(PARTS)}")
    parser.add_argument("--soak-mib", type=float, default=4.0, help="the soak's cache bound (MiB)")
    parser.add_argument("--soak-fills", type=float, default=6.0, help="unique pairs sent, in bounds' worth")
    parser.add_argument("--chart", type=Path, help="draw the soak chart here (.png)")
    args = parser.parse_args(argv)
    model = args.model_dir or build_model("minilm-l6", args.work / "models")
    print(run(model, args.work, args.out, seconds=args.seconds, rounds=args.rounds, soak_mib=args.soak_mib,
              soak_fills=args.soak_fills, chart_path=args.chart, parts=args.parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
