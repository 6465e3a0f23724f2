"""Opt-in fast CPU path: the model exported to ONNX once, fused by ONNX Runtime's transformer optimiser,
optionally int8 dynamically quantised, cached on disk and scored with an onnxruntime session.

The export uses torch.onnx (TorchScript exporter) plus onnxruntime's own optimiser and quantiser rather
than optimum: optimum's ONNX package pins transformers < 4.58, which would downgrade the server's
transformers. The cache key covers the model folder, its weights' size and mtime, the quantisation,
the export recipe and the torch/onnxruntime versions, so a changed model or toolchain re-exports.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Literal

import numpy as np

log = logging.getLogger("rerank_kit.onnx")

Quantize = Literal["none", "int8"]
_OPSET = 17
_EXPORT_RECIPE = 1  # bump when the export/fuse/quantise steps change, so old caches are not reused
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json")


class OnnxBackend:
    """Scores padded batches with an onnxruntime InferenceSession; feeds only the inputs the graph has."""

    def __init__(self, model_path: Path, *, threads: int | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads or 0  # 0: onnxruntime's default, one per physical core
        options.inter_op_num_threads = 1
        self.model_path = model_path
        self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self._input_names = [i.name for i in self._session.get_inputs()]

    @property
    def input_names(self) -> list[str]:
        return list(self._input_names)

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        feed = {name: np.ascontiguousarray(batch[name], dtype=np.int64) for name in self._input_names}
        (out,) = self._session.run(["logits"], feed)
        return out.reshape(-1).astype(np.float32, copy=False)


def load_onnx_backend(model_dir: str, *, quantize: Quantize, threads: int | None, cache_dir: Path) -> OnnxBackend:
    """Export `model_dir` on first use (cached under `cache_dir`), then open it for scoring."""
    if quantize not in ("none", "int8"):
        raise ValueError(f"quantize must be 'none' or 'int8', not {quantize!r}")
    target = Path(cache_dir) / "onnx" / _cache_key(Path(model_dir), quantize)
    model_path = target / "model.onnx"
    if model_path.is_file():
        log.info("using cached ONNX model %s", model_path)
    else:
        log.info("exporting %s to ONNX (%s), once; cached at %s", model_dir, quantize, target)
        _build(Path(model_dir), quantize, target)
    return OnnxBackend(model_path, threads=threads)


def _cache_key(model_dir: Path, quantize: Quantize) -> str:
    import onnxruntime
    import torch

    resolved = model_dir.expanduser().resolve()
    digest = hashlib.sha256(
        f"{resolved}|{quantize}|{_EXPORT_RECIPE}|{torch.__version__}|{onnxruntime.__version__}".encode())
    for path in sorted(resolved.iterdir()):
        if path.suffix in _WEIGHT_SUFFIXES and path.is_file():
            stat = path.stat()
            digest.update(f"|{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return f"{resolved.name}-{quantize}-{digest.hexdigest()[:16]}"


def _build(model_dir: Path, quantize: Quantize, target: Path) -> None:
    """Export, fuse and (for int8) quantise into a temporary folder, then move it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as scratch:
        work = Path(scratch)
        exported, fused = work / "exported.onnx", work / "fused.onnx"
        model_type, num_heads, hidden_size = _export(model_dir, exported)
        _fuse(exported, fused, model_type=model_type, num_heads=num_heads, hidden_size=hidden_size)
        final = work / "out" / "model.onnx"
        final.parent.mkdir()
        if quantize == "int8":
            from onnx import TensorProto
            from onnxruntime.quantization import QuantType, quantize_dynamic

            # the fused graph's com.microsoft ops defeat shape inference: their outputs are float32
            quantize_dynamic(str(fused), str(final), weight_type=QuantType.QInt8, per_channel=True,
                             extra_options={"DefaultTensorType": TensorProto.FLOAT})
        else:
            shutil.copyfile(fused, final)
        try:
            os.replace(final.parent, target)
        except OSError:  # another process finished the same export first
            if not (target / "model.onnx").is_file():
                raise


def _export(model_dir: Path, path: Path) -> tuple[str, int, int]:
    """torch.onnx export with dynamic batch and sequence axes; returns the optimiser's model facts.

    The TorchScript exporter (dynamo=False) and eager attention on purpose: onnxruntime's optimiser
    fuses Attention and GELU in that graph, not in the dynamo exporter's or an SDPA one (torch 2.13,
    onnxruntime 1.31), and the fused graph is what makes this path fast.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation="eager").float().eval()
    sample = tokenizer(["a query", "another query"], ["a passage to score", "a second passage"],
                       padding=True, return_tensors="pt")
    # positional order of the model's forward(): input_ids, attention_mask, token_type_ids
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"logits": {0: "batch"}}
    with torch.inference_mode(), warnings.catch_warnings():
        # tracing warns about shape checks it freezes; the axes that vary are declared dynamic above
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        torch.onnx.export(model, tuple(sample[n] for n in names), str(path), input_names=names,
                          output_names=["logits"], dynamic_axes=axes, opset_version=_OPSET, dynamo=False)
    config = model.config
    model_type = "bert" if config.model_type in ("bert", "xlm-roberta", "roberta") else config.model_type
    return model_type, config.num_attention_heads, config.hidden_size


def _fuse(source: Path, target: Path, *, model_type: str, num_heads: int, hidden_size: int) -> None:
    """ONNX Runtime's transformer optimiser: fused attention, LayerNorm, GELU and bias kernels."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(str(source), model_type=model_type, num_heads=num_heads,
                               hidden_size=hidden_size, opt_level=1, use_gpu=False)
    optimized.save_model_to_file(str(target))
