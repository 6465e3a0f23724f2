"""The export process: a build runs in a child of the server (the same Python), its log records relayed.

The server keeps none of the export's memory (measured for the XLM-R-base shape: 1.4 GB resident after a
first start, where an export in the server's own process left 3.8 GB), and an export that fails in any way
leaves the server serving (on torch under `auto`). The protocol is one JSON object per line on the child's
stdout: log records, then the outcome. The child publishes the entry itself (while the server holds the
key's build lock) and exits if the server dies, leaving at most a scratch folder that is never read.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from local_server.backends import ModelLoadError
from local_server.backends.onnx_runtime import export
from local_server.backends.onnx_runtime.cache import Entry, ExportCache
from local_server.backends.onnx_runtime.export import ExportRejectedError

log = logging.getLogger(__name__)

_JOB_VARIABLE = "RERANK_KIT_EXPORT_JOB"
_IMPORT_ROOT = Path(__file__).resolve().parents[3]  # where `import local_server` finds this package


def build_in_child(model: str, variant: str, key: str, cache: ExportCache, threads: int | None) -> Entry:
    """`_build` in the export process; the entry it published. A child killed by SIGKILL (the out-of-memory
    killer) is cached as a rejection like any failed export; any other end is not: the next start tries again.
    Call while holding `cache.building(key)`."""
    job = json.dumps({"model": model, "variant": variant, "key": key, "cache_dir": str(cache.root.parent),
                      "threads": threads})
    path = os.pathsep.join(filter(None, [str(_IMPORT_ROOT), os.environ.get("PYTHONPATH")]))
    outcome: dict | None = None
    with subprocess.Popen(export_command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
                          env={**os.environ, _JOB_VARIABLE: job, "PYTHONPATH": path}) as process:
        try:
            for line in process.stdout or ():
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
            code = process.wait()
        except BaseException:
            process.kill()
            raise
    if outcome is None:
        reason = f"the ONNX export of {model} ended without an answer (exit code {code}" + (
            ", killed: out of memory?)" if code == -9 else ")")
        if code == -9:
            cache.publish(cache.scratch(key), key, rejected=reason)
        raise ExportRejectedError(reason)
    if outcome["outcome"] == "built":
        return Entry(Path(outcome["path"]))
    if outcome["outcome"] == "load-error":
        raise ModelLoadError(outcome["message"])
    raise ExportRejectedError(outcome["message"])


def export_command() -> list[str]:
    """The export process: this module under its own name (its loggers' names are the server's); -P keeps the
    working directory off its path, _IMPORT_ROOT (in PYTHONPATH) puts this very package on it."""
    return [sys.executable, "-P", "-c", "from local_server.backends.onnx_runtime.child import main; main()"]


def _relay(message: dict) -> None:
    logger = logging.getLogger(message["name"])
    if logger.isEnabledFor(message["levelno"]):
        logger.handle(logging.makeLogRecord({**message, "processName": "onnx-export"}))


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


def _exit_with_the_server(server: int) -> None:
    """An export whose server died (kill -9) stops too: nobody holds its build lock any more."""
    while os.getppid() == server:
        time.sleep(1)
    os._exit(1)


def main() -> None:
    """The export process: _build on the job in its environment; its log records and its outcome on stdout,
    which is this protocol's alone (anything else printed, by Python or a library's C code, goes to stderr)."""
    threading.Thread(target=_exit_with_the_server, args=(os.getppid(),), daemon=True).start()
    job = json.loads(os.environ[_JOB_VARIABLE])
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.INFO, handlers=[_JsonLines(protocol)], force=True)
    try:
        if job["threads"]:
            import torch

            torch.set_num_threads(job["threads"])
        entry = _build(job["model"], job["variant"], job["key"], ExportCache(Path(job["cache_dir"])))
        outcome = {"outcome": "built", "path": str(entry.folder)}
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


def _build(model: str, variant: str, key: str, cache: ExportCache) -> Entry:
    """Build `variant` in a scratch folder and publish it; a rejected fp32 export is published as a rejection
    (and raised). int8 is made from the fp32 entry, which the server checked before starting this."""
    started = time.perf_counter()
    fp32 = None
    if variant != export.FP32:
        fp32 = cache.open(export.cache_key(export.local_model_dir(model), export.FP32))
        if fp32 is None or fp32.rejected:
            raise RuntimeError("the fp32 export this int8 export is made from is not in the cache")
    scratch = cache.scratch(key)
    try:
        export.build(model, variant, scratch, fp32_graph=fp32.graph if fp32 else None)
    except ExportRejectedError as exc:
        shutil.rmtree(scratch)
        cache.publish(cache.scratch(key), key, rejected=str(exc))
        raise
    # keyed only now: building the torch model fetched any weights a hub model's snapshot lacked
    entry = cache.publish(scratch, export.cache_key(export.local_model_dir(model), variant))
    log.info("ONNX export (%s) of %s ready in %.0f s", variant, model,
                                            time.perf_counter() - started)
    return entry
