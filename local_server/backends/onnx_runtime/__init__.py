"""The default CPU path for cross-encoders: the model exported to ONNX once, fused and checked against
torch, optionally int8 quantised (and checked against fp32 on this CPU), cached on disk and scored with an
onnxruntime session.

Serving needs only the tokenizer, the config and the cached export: the server never builds a torch model
for it. The modules, one job each: `cache` (entries, checksums, the build lock), `export` (trace, fuse,
verify; the memory an export needs), `int8` (the CPU's quantisation settings and the check against fp32),
`child` (the export process) and `session` (the onnxruntime session that scores).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np

from local_server import memory
from local_server.backends import LoadedModel, explain_load_failure, require_one_logit
from local_server.backends.onnx_runtime import int8
from local_server.backends.onnx_runtime.cache import Entry, ExportCache
from local_server.backends.onnx_runtime.child import build_in_child
from local_server.backends.onnx_runtime.export import (
    FP32,
    ExportRejectedError,
    cache_key,
    export_memory_bytes,
    local_model_dir,
)
from local_server.backends.onnx_runtime.session import OnnxBackend
from local_server.families import family_for
from local_server.settings import Settings

__all__ = ["ExportRejectedError", "OnnxBackend", "load", "load_onnx_backend"]

log = logging.getLogger(__name__)

Quantize = Literal["none", "int8"]


def load(settings: Settings) -> LoadedModel:
    """The tokenizer and config, and the export's session: on the CPU, whatever RERANK_DEVICE says (the
    session has only the CPU provider), in the export's precision rather than RERANK_FP16's. int8 is served
    only when it passes its check against fp32 on this CPU; otherwise fp32, with the reason in `note`.
    Under `auto`, an export the memory available could not hold is not tried (ExportRejectedError, not cached)."""
    from transformers import AutoConfig, AutoTokenizer

    with explain_load_failure(settings.model):
        config = AutoConfig.from_pretrained(settings.model)
        tokenizer = AutoTokenizer.from_pretrained(settings.model)  # as FlagReranker loads it
    require_one_logit(settings.model, config)
    family = family_for("cross-encoder", tokenizer, settings)
    if settings.device not in ("auto", "cpu"):
        log.warning("the onnx backend runs on the CPU; RERANK_DEVICE=%s does not apply", settings.device)
    options = {"threads": settings.threads, "cache_dir": settings.cache_dir, "forced": settings.backend == "onnx"}
    fp32 = load_onnx_backend(settings.model, quantize="none", **options)
    if settings.onnx_quantize == "none":
        return LoadedModel(fp32, tokenizer, "cpu", "float32", family)
    quantised = load_onnx_backend(settings.model, quantize="int8", **options)
    check = check_int8(fp32, quantised, tokenizer, settings)
    if check.passed:
        log.info("serving %s in int8 (%s): %s", settings.model, Path(quantised.model_path).parent.name,
                 check.describe())
        return LoadedModel(quantised, tokenizer, "cpu", "int8", family, variant=int8.variant_for_this_cpu())
    note = f"serving fp32, not int8: {check.describe()}"
    log.warning("%s: %s", settings.model, note)
    return LoadedModel(fp32, tokenizer, "cpu", "float32", family, note=note)


def check_int8(fp32: OnnxBackend, quantised: OnnxBackend, tokenizer, settings: Settings) -> int8.Int8Check:
    """int8 against fp32 on `int8.CHECK_SETS`, tokenised as the model's tokenizer does (truncated to
    RERANK_MAX_LENGTH)."""
    batches = check_batches(tokenizer, settings.max_length)
    return int8.compare([fp32.logits(b) for b in batches], [quantised.logits(b) for b in batches],
                        max_score_diff=settings.int8_max_score_diff,
                        min_rank_agreement=settings.int8_min_rank_agreement)


def check_batches(tokenizer, max_length: int) -> list[dict[str, np.ndarray]]:
    """`int8.CHECK_SETS` as padded batches, one per query, truncated to `max_length` as the check runs them."""
    limit = min(max_length, tokenizer.model_max_length)
    return [{name: array.astype(np.int64) for name, array in tokenizer(
        [query] * len(documents), list(documents), truncation="only_second", max_length=limit, padding=True,
        return_tensors="np").items()} for query, documents in int8.CHECK_SETS]


def load_onnx_backend(model: str, *, quantize: Quantize, threads: int | None, cache_dir: Path,
                      forced: bool = False) -> OnnxBackend:
    """The session of `model`'s export (a local folder, or a hub id already fetched) cached under `cache_dir`,
    built on first use if the memory available can hold the export (or when `forced`). int8 is the variant
    for this CPU, made from the fp32 export, and not checked here (`load` checks it)."""
    if quantize not in ("none", "int8"):
        raise ValueError(f"quantize must be 'none' or 'int8', not {quantize!r}")
    cache = ExportCache(cache_dir)
    variant = FP32 if quantize == "none" else int8.variant_for_this_cpu()
    return _session(_entry(model, variant, cache, threads=threads, forced=forced), model, variant, cache,
                    threads, forced)


def _entry(model: str, variant: str, cache: ExportCache, *, threads: int | None, forced: bool) -> Entry:
    """`variant`'s cache entry, built when missing or broken; ExportRejectedError for a rejected export."""
    key = cache_key(local_model_dir(model), variant)
    if (entry := cache.open(key)) is None:
        if variant != FP32:  # int8 is made from the fp32 export: that one first (its own build lock)
            _entry(model, FP32, cache, threads=threads, forced=forced)
        with cache.building(key):  # one build per key, across this process's threads and other processes
            if (entry := cache.open(key, repair=True)) is None:  # built elsewhere while this one waited?
                if variant == FP32:
                    _check_memory(model, forced)
                log.info("exporting %s to ONNX Runtime %s, once (a minute or two for a base-size model); "
                         "cached under %s", model, variant, cache.root)
                entry = build_in_child(model, variant, key, cache, threads)
    if entry.rejected:
        raise ExportRejectedError(f"{entry.rejected} (cached verdict: delete {entry.folder} to try again)")
    return entry


def _session(entry: Entry, model: str, variant: str, cache: ExportCache, threads: int | None,
             forced: bool) -> OnnxBackend:
    """The entry's session; an entry whose checksums hold but that ONNX Runtime cannot open is discarded and
    built once more."""
    log.info("using cached ONNX model %s", entry.graph)
    try:
        return OnnxBackend(entry.graph, threads=threads)
    except Exception as exc:  # onnxruntime raises its own Fail / InvalidProtobuf types
        key = entry.folder.name
        with cache.building(key):
            cache.discard(key, f"onnxruntime cannot open it: {type(exc).__name__}")
        return OnnxBackend(_entry(model, variant, cache, threads=threads, forced=forced).graph, threads=threads)


def _check_memory(model: str, forced: bool) -> None:
    """Refuse (not cached: the next start, with more memory, exports) an export the memory left cannot hold."""
    need, available = export_memory_bytes(local_model_dir(model)), memory.available_bytes()
    if available is None or need <= available:
        return
    shortfall = (f"the ONNX export of {model} needs about {need / 2**30:.1f} GiB of memory and "
                 f"{available / 2**30:.1f} GiB are available")
    if not forced:
        raise ExportRejectedError(f"{shortfall} (RERANK_BACKEND=onnx tries anyway; or export on a bigger "
                                  "machine and copy RERANK_CACHE_DIR)")
    log.warning("%s; exporting anyway (RERANK_BACKEND=onnx)", shortfall)

