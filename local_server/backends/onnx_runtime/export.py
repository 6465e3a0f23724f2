"""Building an export: the model traced to ONNX, fused by ONNX Runtime's transformer optimiser and checked
against torch (fp32), or the fp32 export quantised (int8); and the memory an export needs.

The export uses torch.onnx (TorchScript exporter) plus onnxruntime's own optimiser and quantiser rather
than optimum: optimum's ONNX package pins transformers < 4.58, which would downgrade the server's
transformers. Before an fp32 export is cached, its fused graph must give torch's logits on a few pairs
(within `VERIFY_TOLERANCE`); one that fails or disagrees is cached as a rejection with its reason, so the
next start falls back to torch at once instead of exporting again. These steps run in the export process
(`child`), never in the server.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np

from local_server.backends import ModelLoadError, explain_load_failure
from local_server.backends.onnx_runtime import int8
from local_server.backends.onnx_runtime.session import OnnxBackend
from local_server.model_files import file_stamps, model_folder

log = logging.getLogger(__name__)

FP32 = "fp32"
_OPSET = 17
_EXPORT_RECIPE = 3  # bump when the export/fuse/verify/quantise steps change, so old caches are not reused
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json")
VERIFY_TOLERANCE = 1e-4  # max |logit difference| between the fused fp32 graph and torch on the check pairs
# The check pairs: short and long, one that truncates, so padding and the dynamic axes are exercised.
_CHECK_PAIRS = [
    ("what is a cross-encoder?", "A cross-encoder reads the query and the passage together and scores them."),
    ("weather", "It rained all day in the valley, and the river rose above the old stone bridge. " * 3),
    ("how do I reset my password", "Open settings, choose security, then reset. " * 80),
]


class ExportRejectedError(RuntimeError):
    """The model cannot be served through ONNX Runtime (export failed or disagreed with torch); the message
    says why in one line. Cached, so the next start does not try again."""


def local_model_dir(model: str) -> Path:
    """The model's folder on disk (a local path, or its snapshot in the Hugging Face cache)."""
    return model_folder(model, cached_only=True)


def cache_key(model_dir: Path, variant: str) -> str:
    """The entry's name: the model folder, its weights' names, sizes and mtimes, the variant (fp32 or an int8
    variant), the recipe and the torch/onnxruntime versions, so a changed model or toolchain builds anew."""
    resolved = model_dir.expanduser().resolve()
    digest = hashlib.sha256(f"{resolved}|{variant}|{_EXPORT_RECIPE}|{version('torch')}|"
                            f"{version('onnxruntime')}{file_stamps(resolved, _WEIGHT_SUFFIXES)}".encode())
    return f"{resolved.name}-{variant}-{digest.hexdigest()[:16]}"


def build(model: str, variant: str, scratch: Path, *, fp32_graph: Path | None) -> None:
    """Write `variant`'s model.onnx into `scratch`: int8 quantises the cached, verified `fp32_graph`; fp32 traces,
    fuses and verifies (ExportRejectedError when the model cannot be exported or disagrees with torch)."""
    if variant != FP32:
        if fp32_graph is None:
            raise ValueError("an int8 export is made from the cached fp32 export")
        log.info("ONNX export: %s quantisation of the cached fp32 export %s", variant, fp32_graph)
        int8.quantize(fp32_graph, scratch / "model.onnx", variant=variant)
        return
    work = scratch / ".work"
    work.mkdir()
    _export_verified(model, work, scratch / "model.onnx")
    for path in work.iterdir():
        path.unlink()
    work.rmdir()


def export_memory_bytes(model_dir: Path) -> int:
    """What the export process holds at its peak: the fp32 model, its trace, the optimiser's copies of the graph
    and the check session, about 8x the fp32 weights plus the ~0.5 GiB the libraries take (measured: the export
    of the XLM-R-base shape, 1.1 GB of weights, peaked at 8.2 GB resident; this says 9.4 GB)."""
    return 8 * _fp32_weight_bytes(model_dir) + 2**29


def _fp32_weight_bytes(model_dir: Path) -> int:
    """4 bytes per parameter: counted from the safetensors headers, else the .bin files' size, else (a hub
    snapshot whose weights are not fetched yet) estimated from config.json's shape."""
    try:
        parameters = 0
        for shard in sorted(model_dir.glob("*.safetensors")):
            with shard.open("rb") as handle:
                header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
            parameters += sum(math.prod(entry["shape"]) for name, entry in header.items() if name != "__metadata__")
        if parameters:
            return 4 * parameters
        if sized := sum(path.stat().st_size for path in model_dir.glob("*.bin")):
            return sized
        config = json.loads((model_dir / "config.json").read_text())
        hidden, ffn = config["hidden_size"], config.get("intermediate_size", 4 * config["hidden_size"])
        embeddings = config["vocab_size"] + config.get("max_position_embeddings", 512)
        return 4 * (embeddings * hidden + config["num_hidden_layers"] * (4 * hidden**2 + 2 * hidden * ffn))
    except (OSError, ValueError, KeyError, TypeError):  # unreadable: no estimate, no check
        return 0


def _export_verified(model: str, work: Path, final: Path) -> None:
    """The steps, each announced on one log line (the export is the one slow thing a first start does)."""
    import torch

    exported, fused = work / "exported.onnx", work / "fused.onnx"
    log.info("ONNX export 1/2: tracing %s", model)
    try:
        torch_model, tokenizer = _export(model, exported)
        config = torch_model.config
        model_type = "bert" if config.model_type in ("bert", "xlm-roberta", "roberta") else config.model_type
        log.info("ONNX export 2/2: fusing and checking against torch")
        _fuse(exported, fused, model_type=model_type, num_heads=config.num_attention_heads,
              hidden_size=config.hidden_size)
    except ModelLoadError:
        raise
    except Exception as exc:  # an architecture the exporter or optimiser does not handle
        raise ExportRejectedError(f"the ONNX export of {model} failed ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0][:200] if str(exc) else 'no message'})") from exc
    batch = tokenizer([q for q, _ in _CHECK_PAIRS], [d for _, d in _CHECK_PAIRS], truncation="only_second",
                      max_length=min(512, tokenizer.model_max_length), padding=True, return_tensors="np")
    batch = {name: array.astype(np.int64) for name, array in batch.items()}
    with torch.inference_mode():
        expected = torch_model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.view(-1).numpy()
    del torch_model
    got = OnnxBackend(fused, threads=None).logits(batch)
    difference = float(np.abs(got - expected).max())
    if not difference <= VERIFY_TOLERANCE:  # also refuses NaN
        raise ExportRejectedError(f"the ONNX export of {model} gives logits {difference:.2e} away from torch's "
                                  f"(tolerance {VERIFY_TOLERANCE:.0e})")
    log.info("ONNX export matches torch within %.1e on %d check pairs", difference, len(_CHECK_PAIRS))
    fused.replace(final)


def _export(model: str, path: Path):
    """torch.onnx export with dynamic batch and sequence axes; returns the fp32 torch model and tokenizer.

    The TorchScript exporter (dynamo=False) and eager attention on purpose: onnxruntime's optimiser
    fuses Attention and GELU in that graph, not in the dynamo exporter's or an SDPA one (torch 2.13,
    onnxruntime 1.31), and the fused graph is what makes this path fast.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    with explain_load_failure(model):  # a folder or snapshot without weights fails only here
        tokenizer = AutoTokenizer.from_pretrained(model)
        torch_model = AutoModelForSequenceClassification.from_pretrained(model, attn_implementation="eager")
    torch_model = torch_model.float().eval()
    sample = tokenizer(["a query", "another query"], ["a passage to score", "a second passage"],
                       padding=True, return_tensors="pt")
    # positional order of the model's forward(): input_ids, attention_mask, token_type_ids
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"logits": {0: "batch"}}
    with torch.inference_mode(), warnings.catch_warnings():
        # tracing warns about shape checks it freezes; the axes that vary are declared dynamic above
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        torch.onnx.export(torch_model, tuple(sample[n] for n in names), str(path), input_names=names,
                          output_names=["logits"], dynamic_axes=axes, opset_version=_OPSET, dynamo=False)
    return torch_model, tokenizer


def _fuse(source: Path, target: Path, *, model_type: str, num_heads: int, hidden_size: int) -> None:
    """ONNX Runtime's transformer optimiser: fused attention, LayerNorm, GELU and bias kernels."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(str(source), model_type=model_type, num_heads=num_heads,
                               hidden_size=hidden_size, opt_level=1, use_gpu=False)
    optimized.save_model_to_file(str(target))
