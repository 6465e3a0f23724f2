"""The default CPU path for cross-encoders: the model exported to ONNX once, fused by ONNX Runtime's
transformer optimiser, checked against torch, optionally int8 dynamically quantised, cached on disk and
scored with an onnxruntime session.

Serving needs only the tokenizer, the config and the cached export: the server never builds a torch model
for it. A missing export is made in a child process (fp32, eager attention, on the CPU), when the memory
left can hold it, so that its memory returns to the system and its crash is not the server's.
Before an export is cached its fused fp32 graph must give torch's logits on a few pairs (within
`VERIFY_TOLERANCE`); an export that fails or disagrees is cached as a rejection with its reason, so the
next start falls back to torch at once instead of exporting again.

The export uses torch.onnx (TorchScript exporter) plus onnxruntime's own optimiser and quantiser rather
than optimum: optimum's ONNX package pins transformers < 4.58, which would downgrade the server's
transformers. The cache key covers the model folder, its weights' size and mtime, the quantisation,
the export recipe and the torch/onnxruntime versions, so a changed model or toolchain re-exports.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from local_server import memory
from local_server.backends import LoadedModel, ModelLoadError, explain_load_failure, require_one_logit
from local_server.settings import Settings

log = logging.getLogger(__name__)

Quantize = Literal["none", "int8"]
_OPSET = 17
_EXPORT_RECIPE = 2  # bump when the export/fuse/verify/quantise steps change, so old caches are not reused
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json")
VERIFY_TOLERANCE = 1e-4  # max |logit difference| between the fused fp32 graph and torch on the check pairs
_REJECTED = "rejected.json"
_JOB_VARIABLE = "RERANK_KIT_EXPORT_JOB"
_IMPORT_ROOT = Path(__file__).resolve().parents[2]  # where `import local_server` finds this package
_ONE_EXPORT_AT_A_TIME = threading.Lock()
# The check pairs: short and long, one that truncates, so padding and the dynamic axes are exercised.
_CHECK_PAIRS = [
    ("what is a cross-encoder?", "A cross-encoder reads the query and the passage together and scores them."),
    ("weather", "It rained all day in the valley, and the river rose above the old stone bridge. " * 3),
    ("how do I reset my password", "Open settings, choose security, then reset. " * 80),
]


class ExportRejectedError(RuntimeError):
    """The model cannot be served through ONNX Runtime (export failed or disagreed with torch); the message
    says why in one line. Cached, so the next start does not try again."""


def load(settings: Settings) -> LoadedModel:
    """The tokenizer and config, and the export's session: on the CPU, whatever RERANK_DEVICE says (the
    session has only the CPU provider), in the export's precision rather than RERANK_FP16's. Under `auto`, an
    export the memory available could not hold is not tried (ExportRejectedError, not cached)."""
    from transformers import AutoConfig, AutoTokenizer

    with explain_load_failure(settings.model):
        config = AutoConfig.from_pretrained(settings.model)
        tokenizer = AutoTokenizer.from_pretrained(settings.model)  # as FlagReranker loads it
    require_one_logit(settings.model, config)
    if settings.device not in ("auto", "cpu"):
        log.warning("the onnx backend runs on the CPU; RERANK_DEVICE=%s does not apply", settings.device)
    backend = load_onnx_backend(settings.model, quantize=settings.onnx_quantize, threads=settings.threads,
                                cache_dir=settings.cache_dir, forced=settings.backend == "onnx")
    return LoadedModel(backend, tokenizer, "cpu", "int8" if settings.onnx_quantize == "int8" else "float32")


class OnnxBackend:
    """Scores padded batches with an onnxruntime InferenceSession; feeds only the inputs the graph has."""

    name = "onnx"

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


def load_onnx_backend(model: str, *, quantize: Quantize, threads: int | None, cache_dir: Path,
                      forced: bool = False) -> OnnxBackend:
    """Open the export of `model` (a local folder, or a hub id already fetched) cached under `cache_dir`,
    exporting it on first use, if the memory available can hold the export (or when `forced`)."""
    if quantize not in ("none", "int8"):
        raise ValueError(f"quantize must be 'none' or 'int8', not {quantize!r}")
    folder = _export_dir(model, quantize, cache_dir)
    if cached := _open_cached(folder, threads):
        return cached
    with _ONE_EXPORT_AT_A_TIME:  # two lazily loaded models must not both pass the memory check, then both export
        if cached := _open_cached(folder, threads):  # exported (or rejected) while this one waited
            return cached
        need, available = export_memory_bytes(_local_model_dir(model)), memory.available_bytes()
        quantising_only = quantize == "int8" and (_export_dir(model, "none", cache_dir) / "model.onnx").is_file()
        if available is not None and need > available and not quantising_only:
            shortfall = (f"the ONNX export of {model} needs about {need / 2**30:.1f} GiB of memory and "
                         f"{available / 2**30:.1f} GiB are available")
            if not forced:  # not cached: the next start, with more memory, exports
                raise ExportRejectedError(f"{shortfall} (RERANK_BACKEND=onnx tries anyway; or export on a bigger "
                                          "machine and copy RERANK_CACHE_DIR)")
            log.warning("%s; exporting anyway (RERANK_BACKEND=onnx)", shortfall)
        log.info("exporting %s to ONNX Runtime %s, once (a minute or two for a base-size model); cached under %s",
                 model, "int8" if quantize == "int8" else "fp32", Path(cache_dir) / "onnx")
        return OnnxBackend(_build_in_child(model, quantize, Path(cache_dir), threads), threads=threads)


def _open_cached(folder: Path, threads: int | None) -> OnnxBackend | None:
    """The cached export's session; ExportRejectedError for a cached rejection; None when neither is there."""
    if (folder / _REJECTED).is_file():
        raise ExportRejectedError(json.loads((folder / _REJECTED).read_text())["reason"] + " (cached verdict: "
                                  f"delete {folder} to try again)")
    if (folder / "model.onnx").is_file():
        log.info("using cached ONNX model %s", folder / "model.onnx")
        return OnnxBackend(folder / "model.onnx", threads=threads)
    return None


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


def _export_dir(model: str, quantize: Quantize, cache_dir: Path) -> Path:
    return Path(cache_dir) / "onnx" / _cache_key(_local_model_dir(model), quantize)


def _local_model_dir(model: str) -> Path:
    """The model's folder on disk (a local path, or its snapshot in the Hugging Face cache)."""
    if os.path.isdir(model):
        return Path(model)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(model, local_files_only=True))


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


def _build_in_child(model: str, quantize: Quantize, cache_dir: Path, threads: int | None) -> Path:
    """_build in a child process (the same Python, `_export_main`), its log lines relayed here.

    The server keeps none of the export's memory (measured for the XLM-R-base shape: 1.4 GB resident after a
    first start, where an export in the server's own process left 3.8 GB), and an export that fails in any way
    leaves the server serving (on torch under `auto`). A child killed by SIGKILL (the out-of-memory killer) is
    cached as a rejection like any failed export; any other end is not: the next start tries again.
    """
    import subprocess

    job = json.dumps({"model": model, "quantize": quantize, "cache_dir": str(cache_dir), "threads": threads})
    path = os.pathsep.join(filter(None, [str(_IMPORT_ROOT), os.environ.get("PYTHONPATH")]))
    outcome: dict | None = None
    with subprocess.Popen(_export_command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
                          env={**os.environ, _JOB_VARIABLE: job, "PYTHONPATH": path}) as child:
        try:
            for line in child.stdout or ():  # one JSON object per line: log records, then the outcome
                try:
                    message = json.loads(line)
                except ValueError:
                    message = None
                if not isinstance(message, dict):  # printed before the protocol took stdout over
                    sys.stderr.write(line)
                elif "outcome" in message:
                    outcome = message
                else:
                    _relay(message)
            code = child.wait()
        except BaseException:
            child.kill()
            raise
    if outcome is None:
        reason = f"the ONNX export of {model} ended without an answer (exit code {code}" + (
            ", killed: out of memory?)" if code == -9 else ")")
        if code == -9:
            folder = _export_dir(model, quantize, cache_dir)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / _REJECTED).write_text(json.dumps({"reason": reason}))
        raise ExportRejectedError(reason)
    if outcome["outcome"] == "built":
        return Path(outcome["path"])
    if outcome["outcome"] == "load-error":
        raise ModelLoadError(outcome["message"])
    raise ExportRejectedError(outcome["message"])


def _relay(message: dict) -> None:
    logger = logging.getLogger(message["name"])
    if logger.isEnabledFor(message["levelno"]):
        logger.handle(logging.makeLogRecord({**message, "processName": "onnx-export"}))


def _export_command() -> list[str]:
    """The export process: this module under its own name (its loggers' names are the server's); -P keeps the
    working directory off its path, _IMPORT_ROOT (in PYTHONPATH) puts this very package on it."""
    return [sys.executable, "-P", "-c", "from local_server.backends.onnx import _export_main; _export_main()"]


class _JsonLines(logging.Handler):
    """The export process's log records, one JSON object per line, for the server to relay."""

    def __init__(self, stream) -> None:
        super().__init__()
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        line = {"name": record.name, "levelno": record.levelno, "levelname": record.levelname,
                "msg": record.getMessage(), "created": record.created, "msecs": record.msecs,
                "exc_text": logging.Formatter().formatException(record.exc_info) if record.exc_info else None}
        self.stream.write(json.dumps(line) + "\n")


def _export_main() -> None:
    """The export process: _build on the job in its environment; its log records and its outcome on stdout,
    which is this protocol's alone (anything else printed, by Python or a library's C code, goes to stderr)."""
    job = json.loads(os.environ[_JOB_VARIABLE])
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.INFO, handlers=[_JsonLines(protocol)], force=True)
    try:
        if job["threads"]:
            import torch

            torch.set_num_threads(job["threads"])
        outcome = {"outcome": "built", "path": str(_build(job["model"], job["quantize"], Path(job["cache_dir"])))}
    except ExportRejectedError as exc:
        outcome = {"outcome": "rejected", "message": str(exc)}
    except ModelLoadError as exc:
        outcome = {"outcome": "load-error", "message": str(exc)}
    except Exception as exc:  # not a verdict on the model (a full disk, a bug): reported, not cached
        outcome = {"outcome": "failed", "message": f"the ONNX export of {job['model']} failed in its process "
                                                   f"({type(exc).__name__}: {exc})"}
    protocol.write(json.dumps(outcome) + "\n")
    protocol.flush()
    os._exit(0)  # no interpreter shutdown: a library's threads cannot keep the server waiting


def _build(model: str, quantize: Quantize, cache_dir: Path) -> Path:
    """Export, fuse, verify and (for int8) quantise in a scratch folder, then move it into place; its
    model.onnx. A failed or disagreeing export is cached as a rejection and raised as ExportRejectedError.
    int8 with the verified fp32 export already cached only quantises that."""
    root = Path(cache_dir) / "onnx"
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=root, prefix=".export-") as scratch:
        work = Path(scratch)
        out = work / "out"
        out.mkdir()
        verified_fp32 = _export_dir(model, "none", cache_dir) / "model.onnx"
        if quantize == "int8" and verified_fp32.is_file():  # traced, fused and checked already: quantise that
            log.info("ONNX export: int8 quantisation of the cached fp32 export %s", verified_fp32)
            quantize_int8(verified_fp32, out / "model.onnx")
            target = _export_dir(model, quantize, cache_dir)
            _move_into_place(out, target)
            return target / "model.onnx"
        try:
            _export_verified(model, work, out / "model.onnx", quantize)
        except ExportRejectedError as exc:
            (out / _REJECTED).write_text(json.dumps({"reason": str(exc)}))
            _move_into_place(out, _export_dir(model, quantize, cache_dir))
            raise
        # keyed only now: building the torch model fetched any weights a hub model's snapshot lacked
        target = _export_dir(model, quantize, cache_dir)
        _move_into_place(out, target)
    log.info("ONNX export of %s ready in %.0f s", model, time.perf_counter() - started)
    return target / "model.onnx"


def _export_verified(model: str, work: Path, final: Path, quantize: Quantize) -> None:
    """The steps, each announced on one log line (the export is the one slow thing a first start does)."""
    import torch

    exported, fused = work / "exported.onnx", work / "fused.onnx"
    steps = 3 if quantize == "int8" else 2
    log.info("ONNX export 1/%d: tracing %s", steps, model)
    try:
        torch_model, tokenizer = _export(model, exported)
        config = torch_model.config
        model_type = "bert" if config.model_type in ("bert", "xlm-roberta", "roberta") else config.model_type
        log.info("ONNX export 2/%d: fusing and checking against torch", steps)
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
    if quantize == "int8":
        log.info("ONNX export 3/3: int8 quantisation")
        quantize_int8(fused, final)
    else:
        fused.replace(final)


def _move_into_place(folder: Path, target: Path) -> None:
    try:
        os.replace(folder, target)
    except OSError:  # another process finished the same export first
        if not target.is_dir():
            raise


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


def quantize_int8(source: Path, target: Path, *, keep_fp32: Sequence[str] = ()) -> None:
    """Dynamic int8 quantisation, weights per output channel, the named nodes left in fp32.

    The server keeps no node in fp32: the sensitivity sweep of `python -m benchmarks.quality` on the trained
    MiniLM-L6 found no part whose fp32 buys back much (docs/BENCHMARKS.md, "Quality"); the error is spread
    over every layer, so int8 is all or nothing.
    """
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # the fused graph's com.microsoft ops defeat shape inference: their outputs are float32
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                     nodes_to_exclude=list(keep_fp32), extra_options={"DefaultTensorType": TensorProto.FLOAT})
