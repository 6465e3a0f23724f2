"""Ranking quality of the trained MiniLM-L6 (benchmarks.trained) on held-out queries, per serving path.

torch fp32 is the reference; ONNX fp32 and ONNX int8 are scored through the server's own ONNX backend
(`local_server.backends.onnx`, the export, fusion and quantisation it serves). The sensitivity sweep
quantises everything but one part of the network at a time and reports what keeping that part in fp32
buys: the evidence for which parts the server's int8 recipe keeps in fp32.

Run alone: `python -m benchmarks.quality` (prints a markdown table); `make bench` runs it too.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.relevance import Judged, judged_sets, mrr_at, ndcg_at
from rerank_kit.scores import sigmoids

_SWEEP_QUERIES = 40


def evaluate(model_dir: Path, cache_dir: Path, *, sweep: bool = True, queries: int | None = None) -> dict:
    """nDCG@10, MRR@10, agreement with torch and score error for each serving path (and the sweep), over the
    held-out queries (the first `queries` of them when given)."""
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
    return result


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
    return text


def main(argv: list[str] | None = None) -> int:
    from benchmarks.trained import build_trained

    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n\n")[0])
    work = Path(__file__).resolve().parent / ".work"
    parser.add_argument("--work", type=Path, default=work, help="models and caches")
    parser.add_argument("--no-sweep", action="store_true", help="skip the int8 sensitivity sweep")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    model = build_trained(args.work / "models")
    result = evaluate(model, args.work / "cache", sweep=not args.no_sweep)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
