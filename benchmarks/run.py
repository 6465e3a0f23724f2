"""`make bench`: every system on the same model, workload and load, in one run.

Run from the repository root as `python -m benchmarks`. Writes results.json and results.md (tables, the
targets as measured ratios, the machine) to
--out, printing each row as it is measured. Systems: floor (compute_score per request, in-process),
direct (the model alone, length-sorted batches of 32, in-process), naive (FastAPI + compute_score),
infinity (infinity-emb 0.0.78, torch, CPU, fp32), rerank-kit as started with no options (ONNX Runtime fp32 on
a CPU), forced to torch, and with int8. A decoder reranker (the Qwen3-Reranker-0.6B shape) runs only
card (its model card's plain transformers loop, in-process, one request at a time) and rerank-kit. Then
the score cache off and on (benchmarks.cache), the quality of each serving path on a trained model
(benchmarks.quality) and the cost curves as charts (benchmarks.curves).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks import cache, curves, peers, quality
from benchmarks.flops import flops_per_pair
from benchmarks.loadgen import run_load
from benchmarks.models import MODEL_NAMES, ModelShape, build_model
from benchmarks.report import Row, median, percentile, table, targets
from benchmarks.workload import Request, docstrings, make_passages, make_queries, make_requests

SYSTEMS = ("floor", "direct", "naive", "infinity", "rerank-kit", "rerank-kit-torch", "rerank-kit-int8", "card")
_IN_PROCESS = ("floor", "direct", "card")
# The systems that can serve a decoder reranker: the model card's own loop, and rerank-kit (torch)
_DECODER_SYSTEMS = ("card", "rerank-kit")
# direct's batchings: the torch limit (sorted, 32 a batch), arrival order, rerank-kit's CPU token budget
_DIRECT_BATCHINGS = ["direct", "direct-unsorted", "direct-2k-tokens"]
_DEFAULT_WORK = Path(__file__).resolve().parent / ".work"


def _csv(kind):
    return lambda text: [kind(part) for part in text.split(",") if part]


def _cells(text: str) -> list[tuple[int, int]]:
    """'1,20;32,20' -> [(1, 20), (32, 20)]: (concurrency, passages per request)."""
    return [(int(c), int(d)) for c, d in (cell.split(",") for cell in text.split(";") if cell)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", type=_csv(str), default=["minilm-l6", "xlmr-base", "qwen3-0.6b"],
                        help=f"built models to run ({', '.join(MODEL_NAMES)})")
    parser.add_argument("--model-dir", type=Path, action="append", default=[],
                        help="serve this local model folder instead of the built ones (repeatable)")
    parser.add_argument("--systems", type=_csv(str), default=list(SYSTEMS), help=",".join(SYSTEMS))
    parser.add_argument("--cells", type=_cells, default=_cells(";".join(f"{c},{d}" for d in (20, 64, 100)
                                                                        for c in (1, 8, 32))),
                        help="'concurrency,passages;...' for the first model (default: 1, 8, 32 x 20, 64, 100)")
    parser.add_argument("--secondary", type=_cells, default=_cells("8,20"),
                        help="cells for the models after the first (default: 8,20)")
    parser.add_argument("--secondary-systems", type=_csv(str), default=["direct", "infinity", "rerank-kit", "card"],
                        help="systems run on the models after the first (a decoder model runs only "
                             f"{', '.join(_DECODER_SYSTEMS)} of them; a cross-encoder all but card)")
    parser.add_argument("--seconds", type=float, default=20.0, help="time budget of one cell (no new request after)")
    parser.add_argument("--waves", type=int, default=3, help="at most this many requests per client per cell")
    parser.add_argument("--min-requests", type=int, default=6, help="at least this many requests per cell budget")
    parser.add_argument("--direct-pairs", type=int, default=320, help="pairs the direct baseline scores pooled")
    parser.add_argument("--peak-seconds", type=float, default=3.0, help="time spent measuring the matmul peak")
    parser.add_argument("--work", type=Path, default=_DEFAULT_WORK, help="models, venvs and caches")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default WORK/results/<time>)")
    parser.add_argument("--no-quality", dest="quality", action="store_false",
                        help="skip the quality table (trains benchmarks.trained's model on first use)")
    parser.add_argument("--no-cache-bench", dest="cache_bench", action="store_false",
                        help="skip the score cache's run (benchmarks.cache) on the first model")
    parser.add_argument("--curves", type=_csv(str), default=list(curves.SYSTEMS),
                        help=f"systems drawn in the cost curves on the first model ({','.join(curves.SYSTEMS)}; "
                             "empty: no curves)")
    parser.add_argument("--curve-passages", type=_csv(int), default=list(curves.PASSAGES))
    parser.add_argument("--curve-lengths", type=_csv(int), default=list(curves.LENGTHS))


@dataclass
class Workload:
    """One model's passages, queries and per-pair FLOPs."""

    name: str
    model_dir: Path
    shape: ModelShape
    passages: list[str]
    queries: list[str]
    tokenizer: object

    def requests(self, docs: int, count: int) -> list[Request]:
        return make_requests(self.passages, self.queries, docs, count)

    def flops(self, requests: list[Request]) -> float:
        """Mean FLOPs of one pair of these requests, from its real (unpadded, truncated) token count
        (a decoder's: the Qwen3-Reranker template around the pair)."""
        total = pairs = 0
        for request in requests:
            if self.shape.decoder:
                from local_server.families import Qwen3

                texts = [f"{Qwen3.PREFIX}<Instruct>: {Qwen3.DEFAULT_INSTRUCTION}\n<Query>: {request.query}\n"
                         f"<Document>: {d}{Qwen3.SUFFIX}" for d in request.documents]
                enc = self.tokenizer(texts, add_special_tokens=False)
            else:
                enc = self.tokenizer([request.query] * request.pairs, request.documents, truncation="only_second",
                                     max_length=512)
            total += sum(flops_per_pair(self.shape, len(ids)) for ids in enc["input_ids"])
            pairs += request.pairs
        return total / pairs


class Bench:
    def __init__(self, args: argparse.Namespace, out: Path, peak_gflops: float) -> None:
        self.args, self.out, self.peak_gflops = args, out, peak_gflops
        self.rows: list[Row] = []
        self.notes = ""
        self.failures: list[str] = []

    def cells(self, index: int) -> list[tuple[int, int]]:
        """(concurrency, docs) pairs: --cells for the first model, --secondary for the others."""
        return self.args.cells if index == 0 else self.args.secondary

    def cell_requests(self, workload: Workload, concurrency: int, docs: int) -> list[Request]:
        return workload.requests(docs, max(self.args.min_requests, concurrency * self.args.waves))

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(table([row]).splitlines()[-1], flush=True)
        self.save()

    def save(self) -> None:
        (self.out / "results.json").write_text(json.dumps(
            {"machine": machine(self.peak_gflops), "argv": sys.argv, "rows": [r.as_dict() for r in self.rows]},
            indent=1))
        (self.out / "results.md").write_text(render(self.rows, self.peak_gflops) + self.notes)

    def row(self, workload: Workload, system: str, concurrency: int, docs: int, requests: list[Request],
            latencies: list[float], pairs: int, seconds: float, rss_mb: float, errors: int = 0) -> Row:
        rate = pairs / seconds
        mfu = rate * workload.flops(requests) / (self.peak_gflops * 1e9) if self.peak_gflops else 0.0
        return Row(workload.name, system, docs, concurrency, len(latencies), rate, median(latencies) * 1000,
                   percentile(latencies, 99) * 1000, rss_mb, mfu, errors)

    # -- systems -----------------------------------------------------------------------------------

    def in_process(self, workload: Workload, system: str, index: int) -> None:
        cells = self.cells(index)
        if system == "card":  # one request at a time, as the card's loop runs: one row per passage count
            for docs in sorted({d for _, d in cells}):
                requests = workload.requests(docs, self.args.min_requests)
                job = {"model": str(workload.model_dir), "requests": [asdict(r) for r in requests],
                       "max_requests": len(requests), "max_seconds": self.args.seconds * 3}
                result = run_child(system, job, self.out / f"{workload.name}-{system}-{docs}")
                self.add(self.row(workload, system, 1, docs, requests[: len(result["latencies"])],
                                  result["latencies"], result["pairs"], result["seconds"], result["peak_rss_mb"]))
            return
        for docs in sorted({d for _, d in cells}):
            requests = workload.requests(docs, self.args.min_requests)
            # direct's throughput: the pairs the servers hold at once in this size's busiest cell, capped
            busiest = max(c for c, d in cells if d == docs) * docs
            pool = workload.requests(docs, max(1, math.ceil(min(self.args.direct_pairs, busiest) / docs)))
            job = {"model": str(workload.model_dir), "requests": [asdict(r) for r in requests],
                   "pool": [asdict(r) for r in pool], "max_requests": len(requests),
                   "max_seconds": self.args.seconds * 3,
                   "batchings": _DIRECT_BATCHINGS if index == 0 else _DIRECT_BATCHINGS[:1]}
            result = run_child(system, job, self.out / f"{workload.name}-{system}-{docs}")
            if system == "floor":
                self.add(self.row(workload, system, 1, docs, requests[: len(result["latencies"])],
                                  result["latencies"], result["pairs"], result["seconds"], result["peak_rss_mb"]))
                continue
            for batching, seconds in result["seconds"].items():  # latency: one request at a time
                latencies = result["latencies"] if batching == "direct" else []
                self.add(self.row(workload, batching, 1, docs, pool, latencies, result["pairs"], seconds,
                                  result["peak_rss_mb"]))

    def served(self, workload: Workload, spec: peers.ServerSpec, index: int) -> None:
        log = self.out / f"{workload.name}-{spec.name}.log"
        with peers.serve(spec, workload.model_dir, log, cwd=Path(__file__).resolve().parent.parent) as server:
            print(f"# {spec.name} healthy after {server.startup_seconds:.1f} s", flush=True)
            run_load(server.rerank_url, spec.body, workload.requests(self.cells(index)[0][1], 2), concurrency=1,
                     max_seconds=self.args.seconds)  # warm-up, not recorded
            profiled = spec.name.startswith("rerank-kit")
            for concurrency, docs in self.cells(index):
                requests = self.cell_requests(workload, concurrency, docs)
                before = peers.batcher_counters(server.base_url) if profiled else {}
                result = run_load(server.rerank_url, spec.body, requests, concurrency=concurrency,
                                  max_seconds=self.args.seconds)
                done = requests[: len(result.latencies)]
                row = self.row(workload, spec.name, concurrency, docs, done, result.latencies, result.pairs,
                               result.seconds, server.rss.peak_mb, len(result.errors))
                if profiled:
                    after = peers.batcher_counters(server.base_url)
                    delta = {key: after[key] - before[key] for key in after}
                    row.engine_busy = delta["inference_seconds"] / result.seconds
                    row.padding = delta["batch_padded_tokens"] / delta["batch_real_tokens"] - 1
                self.add(row)

    def quality(self) -> str:
        from benchmarks.trained import build_trained

        model = build_trained(self.args.work / "models")
        result = run_child("quality", {"model": str(model), "cache_dir": str(self.args.work / "cache")},
                           self.out / "quality")
        return quality.table(result)

    def curves(self, workload: Workload) -> str:
        points = curves.measure(workload.model_dir, workload.tokenizer, self.args.work, self.out,
                                systems=self.args.curves, passages=self.args.curve_passages,
                                lengths=self.args.curve_lengths, seconds=self.args.seconds * 6)
        (self.out / "curves.json").write_text(json.dumps(curves.as_dicts(points), indent=1))
        charts = curves.draw(points, self.out, f"{workload.name}, {machine(self.peak_gflops)['cpu']}, "
                                               f"{os.cpu_count()} cores")
        self.failures += [f"- curve {p.system} {p.axis}={p.x}: {p.errors} failed requests, so no point"
                          for p in points if p.errors]
        return ("\nCost curves (c=1; charts " + ", ".join(c.name for c in charts) + "):\n\n"
                + curves.table(points))


def run_child(mode: str, job: dict, stem: Path) -> dict:
    """benchmarks.inprocess MODE in a child process; its JSON result."""
    job_path, result_path = stem.with_suffix(".job.json"), stem.with_suffix(".result.json")
    job_path.write_text(json.dumps(job))
    with stem.with_suffix(".log").open("w") as log:
        subprocess.run([sys.executable, "-m", "benchmarks.inprocess", mode, str(job_path), str(result_path)],
                       check=True, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **peers.QUIET_ENV})
    return json.loads(result_path.read_text())


def machine(peak_gflops: float) -> dict:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "matmul_peak_gflops": round(peak_gflops, 1),
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}


def render(rows: list[Row], peak_gflops: float) -> str:
    info = machine(peak_gflops)
    parts = [f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} ({info['torch_threads']} "
             f"threads), Python {info['python']}; fp32 matmul peak {info['matmul_peak_gflops']} GFLOP/s; "
             f"{info['date_utc']} UTC.", "", table(rows)]
    for model in dict.fromkeys(r.model for r in rows):
        if not any(r.model == model and r.system in ("direct", "naive", "infinity") for r in rows):
            continue  # a decoder's row has only the card's loop beside it: no cross-encoder targets apply
        ours = [r for r in rows if r.model == model and r.system == "rerank-kit"]
        busiest = max(ours, key=lambda r: (r.concurrency, -r.docs), default=None)
        cell = (busiest.docs, busiest.concurrency) if busiest else (20, 32)
        parts += ["", f"Targets for {model} (ratios measured in this run):", "", targets(rows, model, *cell)]
    return "\n".join(parts) + "\n"


def _workloads(args: argparse.Namespace) -> list[Workload]:
    from transformers import AutoTokenizer

    folders = [(d.name, d) for d in args.model_dir]
    for name in ([] if args.model_dir else args.models):
        corpus = docstrings() if name in ("xlmr-base", "qwen3-0.6b") else ()  # their tokenizers are trained here
        folders.append((name, build_model(name, args.work / "models", corpus=corpus)))
    workloads = []
    for name, folder in folders:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        passages = make_passages(tokenizer, max(d for _, d in args.cells + args.secondary) * 4)
        workloads.append(Workload(name, folder, ModelShape.of(folder), passages, make_queries(64), tokenizer))
    return workloads


def run(args: argparse.Namespace) -> int:
    unknown = set(args.systems + args.secondary_systems + args.curves) - set(SYSTEMS)
    if unknown:
        print(f"unknown systems {sorted(unknown)}; choose from {','.join(SYSTEMS)}", file=sys.stderr)
        return 2
    args.work.mkdir(parents=True, exist_ok=True)
    out = args.out or args.work / "results" / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out.mkdir(parents=True, exist_ok=True)
    several_models = len(args.model_dir or args.models) > 1
    if "infinity" in args.systems + args.curves or (several_models and "infinity" in args.secondary_systems):
        peers.ensure_infinity(args.work, os.environ.get("PY311") or "python3.11")
    workloads = _workloads(args)
    peak = run_child("peak", {"max_seconds": args.peak_seconds}, out / "peak")["gflops"] if args.peak_seconds else 0.0
    print(f"# fp32 matmul peak {peak:.1f} GFLOP/s; results in {out}", flush=True)
    bench = Bench(args, out, peak)
    for index, workload in enumerate(workloads):
        chosen = args.systems if index == 0 else args.secondary_systems
        for system in [s for s in chosen if (s in _DECODER_SYSTEMS) == workload.shape.decoder
                       or s == "rerank-kit"]:
            try:
                if system in _IN_PROCESS:
                    bench.in_process(workload, system, index)
                else:
                    bench.served(workload, peers.server_spec(system, args.work), index)
            except (RuntimeError, subprocess.CalledProcessError) as exc:  # one system's failure ends only its rows
                print(f"# {workload.name} {system} failed: {exc}", flush=True)
                bench.failures.append(f"- {workload.name} {system} failed: {str(exc).splitlines()[0]}")
        if index == 0 and args.curves:
            try:
                bench.notes += bench.curves(workload)
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                bench.failures.append(f"- the cost curves failed: {str(exc).splitlines()[0]}")
            bench.save()
    if args.cache_bench and not workloads[0].shape.decoder:
        bench.notes += "\nThe score cache (benchmarks.cache; chart cache-soak.png):\n\n" + cache.run(
            workloads[0].model_dir, args.work, out / "cache", seconds=max(args.seconds, 30.0), rounds=3, soak_mib=4,
            soak_fills=6, chart_path=out / "cache-soak.png")
        bench.save()
    if args.quality:
        bench.notes += "\nQuality of each serving path (trained MiniLM-L6, held-out queries):\n\n" + bench.quality()
        bench.save()
    summary = render(bench.rows, peak) + bench.notes
    bench.failures += [f"- {r.model} {r.system} c={r.concurrency} x {r.docs}: {r.errors} failed requests, "
                       "so no throughput" for r in bench.rows if r.errors]
    if bench.failures:
        summary += "\nNot measured:\n\n" + "\n".join(bench.failures) + "\n"
    (out / "results.md").write_text(summary)
    print("\n" + summary)
    return 1 if bench.failures else 0
