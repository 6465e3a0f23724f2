"""Ranking quality of the trained MiniLM-L6 (benchmarks.trained) on held-out queries, per serving path.

torch fp32 is the reference; ONNX fp32 and ONNX int8 are scored through the server's own ONNX backend
(`local_server.backends.onnx_runtime`, the export, fusion and quantisation it serves). The sensitivity sweep
quantises everything but one part of the network at a time and reports what keeping that part in fp32
buys: the evidence for which parts the server's int8 recipe keeps in fp32.

`--cpu-kinds native,haswell` adds int8's loss per CPU kind: both int8 variants (full range, and the 7-bit
`reduce_range` weights served where the int8 kernel saturates) against torch fp32, and what the server's
startup check (`int8.compare` on `int8.CHECK_SETS`, default tolerance) decides for each. `haswell` is an
AVX2 CPU without VNNI, emulated: the int8 logits come from a child process of this same python run under
`qemu-x86_64 -cpu Haswell`, which reproduces that CPU's saturating int8 kernel (slowly: cap its held-out
queries with `--emulated-queries`).

Run alone: `python -m benchmarks.quality` (prints a markdown table); `make bench` runs it too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from benchmarks.relevance import Judged, judged_sets, mrr_at, ndcg_at
from rerank_kit.scores import sigmoids

_SWEEP_QUERIES = 40
# How each CPU kind runs this python: natively, or under QEMU's user-mode emulation of a CPU model.
EMULATORS: dict[str, list[str]] = {"native": [], "haswell": ["qemu-x86_64", "-cpu", "Haswell"]}


def evaluate(model_dir: Path, cache_dir: Path, *, sweep: bool = True, queries: int | None = None,
             cpu_kinds: tuple[str, ...] = (), emulated_queries: int | None = None) -> dict:
    """nDCG@10, MRR@10, agreement with torch and score error for each serving path (and the sweep), over the
    held-out queries (the first `queries` of them when given); both int8 variants per CPU kind when asked
    (the emulated kinds on the first `emulated_queries` held-out queries when given)."""
    from transformers import AutoTokenizer

    from local_server.backends.onnx_runtime import load_onnx_backend

    held_out = judged_sets()[1][:queries]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    batches = [dict(tokenizer([j.query] * len(j.candidates), j.candidates, truncation="only_second",
                              max_length=512, padding=True, return_tensors="np")) for j in held_out]
    reference = _torch_logits(model_dir, batches)
    backends = {label: load_onnx_backend(str(model_dir), quantize=quantize, threads=None, cache_dir=cache_dir)
                for label, quantize in (("ONNX fp32", "none"), ("ONNX int8", "int8"))}
    paths = {"torch fp32": reference} | {label: [b.logits(x) for x in batches] for label, b in backends.items()}
    result = {"queries": len(held_out), "candidates": len(held_out[0].candidates),
              "paths": {label: _metrics(held_out, logits, reference) for label, logits in paths.items()}}
    if sweep:  # on the first _SWEEP_QUERIES held-out queries: one quantisation and scoring per part
        n = _SWEEP_QUERIES
        result["sweep"] = _sensitivity(backends["ONNX fp32"].model_path, held_out[:n], batches[:n], reference[:n])
        result["sweep_queries"] = len(held_out[:n])
    if cpu_kinds:
        from local_server.backends.onnx_runtime import check_batches
        from local_server.settings import Settings

        checks = check_batches(tokenizer, Settings.model_fields["max_length"].default)
        result["cpu_kinds"] = {kind: _int8_on(kind, backends["ONNX fp32"].model_path, held_out, batches, reference,
                                              checks, None if kind == "native" else emulated_queries)
                               for kind in cpu_kinds}
    return result


def _int8_on(kind: str, fp32_graph: Path, held_out: list[Judged], batches: list[dict], reference: list[np.ndarray],
             check_batches: list[dict], queries: int | None) -> dict:
    """Both int8 variants scored on CPU `kind`: metrics against torch on the (first `queries`) held-out queries,
    the startup check against ONNX fp32 on the same CPU at the default tolerance, the variant the server picks
    there (its saturation probe, run there) and what it serves."""
    from local_server.backends.onnx_runtime import int8
    from local_server.settings import Settings

    n = len(held_out[:queries])
    tolerance = {"max_score_diff": Settings.model_fields["int8_max_score_diff"].default,
                 "min_rank_agreement": Settings.model_fields["int8_min_rank_agreement"].default}
    with tempfile.TemporaryDirectory() as scratch:
        graphs = {variant: Path(scratch) / f"{variant}.onnx" for variant in (int8.FULL_RANGE, int8.REDUCED_RANGE)}
        for variant, graph in graphs.items():
            int8.quantize(fp32_graph, graph, variant=variant)
        jobs = [(fp32_graph, len(check_batches))] + [(graph, len(check_batches) + n) for graph in graphs.values()]
        saturating, (fp32_check, *quantised) = _score(kind, jobs, check_batches + batches[:n], Path(scratch))
    variants = {}
    for variant, logits in zip(graphs, quantised, strict=True):
        check = int8.compare(fp32_check, logits[:len(check_batches)], **tolerance)
        variants[variant] = (_metrics(held_out[:n], logits[len(check_batches):], reference[:n])
                             | {"check": asdict(check) | {"passed": check.passed}})
    picked = int8.REDUCED_RANGE if saturating else int8.FULL_RANGE
    return {"label": cpu_label(kind), "queries": n, "saturates": saturating, "picked": picked,
            "served": picked if variants[picked]["check"]["passed"] else "fp32",
            "torch fp32": _metrics(held_out[:n], reference[:n], reference[:n]), "variants": variants}


def cpu_label(kind: str) -> str:
    if kind == "haswell":
        return "AVX2 without VNNI (QEMU Haswell, emulated)"
    flags = {flag for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
             for flag in line.split(":", 1)[1].split()}
    isa = ("AVX-512 VNNI" if "avx512_vnni" in flags else "AVX-VNNI" if "avx_vnni" in flags
           else "AVX2 without VNNI" if "avx2" in flags else "no AVX2")
    return f"this CPU ({isa})"


def _score(kind: str, jobs: list[tuple[Path, int]], batches: list[dict],
           scratch: Path) -> tuple[bool, list[list[np.ndarray]]]:
    """Whether the int8 kernel saturates on CPU `kind`, and each (graph, n) job's logits on the first n batches,
    scored there: in this process natively, else in a child of this python under the kind's emulator."""
    if not EMULATORS[kind]:
        return score_graphs(jobs, batches)
    job, answer = scratch / "job.npz", scratch / "logits.npz"
    np.savez(job, graphs=np.array([str(graph) for graph, _ in jobs]), counts=np.array([n for _, n in jobs]),
             **{f"b{i}.{name}": array for i, batch in enumerate(batches) for name, array in batch.items()})
    done = subprocess.run([*EMULATORS[kind], sys.executable, "-m", "benchmarks.quality", "--score-graphs",
                           str(job), str(answer)], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"scoring under {' '.join(EMULATORS[kind])} failed ({done.returncode}): "
                           f"{done.stderr[-2000:]}")
    with np.load(answer) as out:
        return bool(out["saturates"]), [[out[f"g{g}.b{i}"] for i in range(n)] for g, (_, n) in enumerate(jobs)]


def score_graphs(jobs: list[tuple[Path, int]], batches: list[dict], *,
                 threads: int | None = None) -> tuple[bool, list[list[np.ndarray]]]:
    from local_server.backends.onnx_runtime import OnnxBackend, int8

    logits = []
    for graph, n in jobs:
        backend = OnnxBackend(graph, threads=threads)
        logits.append([backend.logits(b) for b in batches[:n]])
    return int8.saturates(), logits


def _score_child(job: Path, answer: Path) -> None:
    """The emulated side of `_score`: the job's graphs and batches in, the probe and the logits out (.npz)."""
    with np.load(job) as data:
        jobs = [(Path(str(graph)), int(n)) for graph, n in zip(data["graphs"], data["counts"], strict=True)]
        batches: list[dict] = []
        for key in data.files:
            if key.startswith("b"):
                index, name = key[1:].split(".", 1)
                while len(batches) <= int(index):
                    batches.append({})
                batches[int(index)][name] = data[key]
    # one thread: under emulation, ONNX Runtime's spinning worker threads cost more than they add
    saturating, logits = score_graphs(jobs, batches, threads=1)
    np.savez(answer, saturates=np.array(saturating),
             **{f"g{g}.b{i}": out for g, graph_logits in enumerate(logits) for i, out in enumerate(graph_logits)})


def _torch_logits(model_dir: Path, batches: list[dict]) -> list[np.ndarray]:
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).float().eval()
    with torch.inference_mode():
        return [model(**{k: torch.from_numpy(v) for k, v in b.items()}).logits.view(-1).numpy() for b in batches]


def _metrics(held_out: list[Judged], logits: list[np.ndarray], reference: list[np.ndarray]) -> dict:
    return {
        "ndcg@10": float(np.mean([ndcg_at(s.tolist(), j.relevant) for s, j in zip(logits, held_out, strict=True)])),
        "mrr@10": float(np.mean([mrr_at(s.tolist(), j.relevant) for s, j in zip(logits, held_out, strict=True)])),
        "top1_agreement": float(np.mean([np.argmax(s) == np.argmax(r)
                                         for s, r in zip(logits, reference, strict=True)])),
        "max_score_diff": max(float(np.abs(np.array(sigmoids(s)) - np.array(sigmoids(r))).max())
                              for s, r in zip(logits, reference, strict=True)),
        "mean_logit_error": float(np.mean([np.abs(s - r).mean() for s, r in zip(logits, reference, strict=True)])),
    }


def _sensitivity(fp32_graph: Path, held_out: list[Judged], batches: list[dict],
                 reference: list[np.ndarray]) -> dict[str, dict]:
    """int8 with one part kept in fp32, for each part (every layer, the embeddings, pooler + head)."""
    import onnx

    from local_server.backends.onnx_runtime import OnnxBackend, int8

    nodes = [n.name for n in onnx.load(str(fp32_graph), load_external_data=False).graph.node]
    parts = {"nothing (all int8)": []}
    parts["embeddings"] = [n for n in nodes if n.startswith("EmbedLayerNormalization")]
    attention = sorted(n for n in nodes if n.startswith("Attention"))
    for layer, attention_node in enumerate(attention):
        parts[f"layer {layer}"] = [attention_node] + [n for n in nodes if f"/layer.{layer}/" in n]
    parts["pooler + head"] = [n for n in nodes if n.startswith(("/bert/pooler", "/classifier", "/roberta/pooler"))]
    out = {}
    with tempfile.TemporaryDirectory() as scratch:
        for label, keep in parts.items():
            target = Path(scratch) / "model.onnx"
            int8.quantize(fp32_graph, target, variant=int8.variant_for_this_cpu(), keep_fp32=keep)
            backend = OnnxBackend(target, threads=None)
            out[label] = _metrics(held_out, [backend.logits(b) for b in batches], reference)
    return out


def table(result: dict) -> str:
    rows = ["| path | nDCG@10 | MRR@10 | top-1 = torch's | max score diff | mean logit error |",
            "|---|---:|---:|---:|---:|---:|"]
    for label, m in result["paths"].items():
        rows.append(f"| {label} | {m['ndcg@10']:.4f} | {m['mrr@10']:.4f} | {m['top1_agreement']:.1%} | "
                    f"{m['max_score_diff']:.2e} | {m['mean_logit_error']:.4f} |")
    text = (f"Held-out queries: {result['queries']}, {result['candidates']} candidates each (one relevant).\n\n"
            + "\n".join(rows) + "\n")
    if "sweep" in result:
        rows = ["| int8, kept in fp32 | nDCG@10 | top-1 = torch's | mean logit error |", "|---|---:|---:|---:|"]
        rows += [f"| {label} | {m['ndcg@10']:.4f} | {m['top1_agreement']:.1%} | {m['mean_logit_error']:.4f} |"
                 for label, m in result["sweep"].items()]
        text += (f"\nSensitivity (int8 everywhere except the part named; first {result['sweep_queries']} held-out "
                 "queries):\n\n" + "\n".join(rows) + "\n")
    if "cpu_kinds" in result:
        text += "\n" + cpu_table(result["cpu_kinds"])
    return text


def _verdict(kind: dict, variant: str) -> str:
    if variant != kind["picked"]:
        return "not picked on this CPU"
    return "**served**" if kind["served"] == variant else "**refused**: fp32 served"


def cpu_table(kinds: dict[str, dict]) -> str:
    """int8's loss per CPU kind and variant, and the startup check's decision."""
    rows = ["| CPU kind | path | queries | nDCG@10 | MRR@10 | top-1 = torch's | max score diff | mean logit error | "
            "startup check: max diff / pairs ordered as fp32 | server |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for kind in kinds.values():
        paths = {"torch fp32": kind["torch fp32"]} | kind["variants"]
        for label, m in paths.items():
            check = (f"{m['check']['max_score_diff']:.3f} / {m['check']['rank_agreement']:.1%}: "
                     f"{'pass' if m['check']['passed'] else 'FAIL'}" if "check" in m else "")
            rows.append(f"| {kind['label']} | {label} | {kind['queries']} | {m['ndcg@10']:.4f} | {m['mrr@10']:.4f} | "
                        f"{m['top1_agreement']:.1%} | {m['max_score_diff']:.3f} | {m['mean_logit_error']:.4f} | "
                        f"{check} | {_verdict(kind, label) if 'check' in m else 'reference'} |")
    return ("int8 per CPU kind (variants: int8 = full-range weights, int8-reduce-range = 7-bit weights; the "
            "startup check compares with ONNX fp32 on the same CPU at the default tolerance):\n\n"
            + "\n".join(rows) + "\n")


def chart(kinds: dict[str, dict], target: Path) -> None:
    """nDCG@10 and top-1 agreement per CPU kind x int8 variant, torch fp32 as the reference line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    variants = list(next(iter(kinds.values()))["variants"])
    width = 0.8 / len(variants)
    for ax, (metric, title) in zip(axes, (("ndcg@10", "nDCG@10"), ("top1_agreement", "top-1 = torch fp32's")),
                                   strict=True):
        for i, variant in enumerate(variants):
            xs = [k + (i - (len(variants) - 1) / 2) * width for k in range(len(kinds))]
            values = [kind["variants"][variant][metric] for kind in kinds.values()]
            bars = ax.bar(xs, values, width, label=variant, color=f"C{i}")
            for bar, kind in zip(bars, kinds.values(), strict=True):
                verdict = ("served" if kind["served"] == variant else "refused" if kind["picked"] == variant
                           else "not picked")
                ax.annotate(f"{bar.get_height():.3f}\n{verdict}", (bar.get_x() + width / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=8)
        for k, kind in enumerate(kinds.values()):
            ax.hlines(kind["torch fp32"][metric], k - 0.45, k + 0.45, colors="black", linestyles="--",
                      label="torch fp32" if k == 0 else None)
        ax.set_xticks(range(len(kinds)), [f"{kind['label']}\n{kind['queries']} queries" for kind in kinds.values()],
                      fontsize=8)
        ax.set_ylim(0, 1.15)
        ax.set_title(title)
    axes[0].legend(loc="lower right", fontsize=8)
    figure.suptitle("int8 vs torch fp32 per CPU kind (trained MiniLM-L6, held-out queries)", fontsize=10)
    figure.savefig(target, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.trained import build_trained

    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n\n")[0])
    work = Path(__file__).resolve().parent / ".work"
    parser.add_argument("--work", type=Path, default=work, help="models and caches")
    parser.add_argument("--no-sweep", action="store_true", help="skip the int8 sensitivity sweep")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--cpu-kinds", type=lambda text: tuple(text.split(",")), default=(),
                        help=f"also both int8 variants per CPU kind, comma-separated from {','.join(EMULATORS)}")
    parser.add_argument("--queries", type=int, help="the first N held-out queries only (default all)")
    parser.add_argument("--emulated-queries", type=int, help="held-out queries for an emulated CPU kind (default all)")
    parser.add_argument("--chart", type=Path, help="with --cpu-kinds: draw the int8 per CPU kind chart here (.png)")
    parser.add_argument("--score-graphs", nargs=2, type=Path, metavar=("JOB", "ANSWER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.score_graphs:  # the child of an emulated CPU kind (_score)
        _score_child(*args.score_graphs)
        return 0
    if unknown := set(args.cpu_kinds) - set(EMULATORS):
        parser.error(f"unknown CPU kind(s) {', '.join(sorted(unknown))}: choose from {', '.join(EMULATORS)}")
    model = build_trained(args.work / "models")
    result = evaluate(model, args.work / "cache", sweep=not args.no_sweep, queries=args.queries,
                      cpu_kinds=args.cpu_kinds, emulated_queries=args.emulated_queries)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if args.chart and "cpu_kinds" in result:
        chart(result["cpu_kinds"], args.chart)
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
