"""The served systems: how each one starts, what it is sent, and its memory while it runs.

- naive:      benchmarks/naive_server.py (FastAPI + FlagReranker.compute_score per request), this venv;
- infinity:   infinity-emb 0.0.78, torch engine, CPU, fp32, in its own venv under benchmarks/.work;
- rerank-kit: `rerank-kit serve` (torch backend), and its opt-in ONNX fp32 / int8 backends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.workload import Request

# Infinity pins numpy<2, so it gets a venv of its own, installed from its lock (torch: the CPU wheel).
INFINITY_LOCK = Path(__file__).resolve().parent.parent / "requirements" / "infinity-py311.lock"
QUIET_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1",
              "INFINITY_ANONYMOUS_USAGE_STATS": "0", "TOKENIZERS_PARALLELISM": "true"}


def _documents_body(request: Request) -> dict:
    return {"query": request.query, "documents": request.documents}


@dataclass(frozen=True)
class ServerSpec:
    name: str
    command: Callable[[Path, int], list[str]]
    env: dict[str, str] = field(default_factory=dict)
    body: Callable[[Request], dict] = _documents_body
    rerank_path: str = "/rerank"
    health_path: str = "/health"


def rerank_kit_spec(name: str, work: Path, **settings: str) -> ServerSpec:
    """rerank-kit with `settings`; the score cache off unless they set it: the peers cache nothing and a cell's
    requests repeat (its warm-up's too), so the peer cells compare the model paths (benchmarks.cache: the cache)."""
    env = {"RERANK_OFFLINE": "1", "RERANK_LOG_LEVEL": "warning", "RERANK_CACHE_DIR": str(work / "cache"),
           "RERANK_CACHE_BYTES": "0", **{f"RERANK_{key.upper()}": value for key, value in settings.items()}}
    return ServerSpec(
        name,
        lambda model, port: [sys.executable, "-m", "rerank_kit.cli", "serve", "--model", str(model),
                             "--host", "127.0.0.1", "--port", str(port)],
        env,
        body=lambda r: {"query": r.query, "documents": r.documents, "return_documents": False},
    )


def server_spec(system: str, work: Path) -> ServerSpec:
    """The served systems by name: rerank-kit as a user starts it (no options: ONNX Runtime fp32 on a CPU),
    forced to torch, with int8; the naive tutorial server; Infinity."""
    if system == "naive":
        return naive_spec()
    if system == "infinity":
        return infinity_spec(work)
    # The int8 cell times the int8 path whatever its start-up check says of the untrained head's scores
    # (int8's quality is benchmarks.quality's subject, on the trained model).
    always_int8 = {"onnx_quantize": "int8", "int8_max_score_diff": "1", "int8_min_rank_agreement": "0"}
    settings = {"rerank-kit": {}, "rerank-kit-torch": {"backend": "torch"}, "rerank-kit-int8": always_int8}[system]
    return rerank_kit_spec(system, work, **settings)


def naive_spec() -> ServerSpec:
    return ServerSpec(
        "naive",
        lambda model, port: [sys.executable, "-m", "uvicorn", "benchmarks.naive_server:app", "--host",
                             "127.0.0.1", "--port", str(port), "--log-level", "warning"],
    )


def infinity_spec(work: Path) -> ServerSpec:
    python = infinity_python(work)
    return ServerSpec(
        "infinity",
        lambda model, port: [str(python.parent / "infinity_emb"), "v2", "--model-id", str(model), "--engine",
                             "torch", "--device", "cpu", "--dtype", "float32", "--batch-size", "32",
                             "--host", "127.0.0.1", "--port", str(port)],
    )


def infinity_python(work: Path) -> Path:
    return work / "infinity-venv" / "bin" / "python"


def ensure_infinity(work: Path, python311: str) -> Path:
    """Create Infinity's venv under `work` from its lock (minutes the first time, again when the lock
    changes); return its python."""
    python = infinity_python(work)
    marker = python.parent.parent / ".installed"
    lock = INFINITY_LOCK.read_text()
    if marker.is_file() and marker.read_text() == lock:
        return python
    print(f"installing Infinity from {INFINITY_LOCK.name} into {python.parent.parent} ...", flush=True)
    subprocess.run([python311, "-m", "venv", "--clear", str(python.parent.parent)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r",
                    str(INFINITY_LOCK)], check=True)
    marker.write_text(lock)
    return python


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _RssSampler:
    """Peak resident memory of a process and its children, sampled every 0.2 s."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._root = psutil.Process(pid)
        self._psutil = psutil
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            with contextlib.suppress(self._psutil.Error):
                tree = [self._root, *self._root.children(recursive=True)]
                total = 0
                for proc in tree:
                    with contextlib.suppress(self._psutil.Error):
                        total += proc.memory_info().rss
                self.peak_mb = max(self.peak_mb, total / 2**20)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mb


@dataclass
class RunningServer:
    spec: ServerSpec
    base_url: str
    rss: _RssSampler
    startup_seconds: float
    pid: int

    @property
    def rerank_url(self) -> str:
        return self.base_url + self.spec.rerank_path


def batcher_counters(base_url: str) -> dict[str, float]:
    """rerank-kit's batcher counters from /metrics (inference seconds, real and padded tokens)."""
    wanted = ("rerank_inference_seconds_total", "rerank_batch_real_tokens_total", "rerank_batch_padded_tokens_total")
    counters = {}
    for line in httpx.get(base_url + "/metrics", timeout=10).text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            counters[name.removeprefix("rerank_").removesuffix("_total")] = float(value)
    return counters


@contextlib.contextmanager
def serve(spec: ServerSpec, model_dir: Path, log_path: Path, *, startup_timeout: float = 600.0,
          cwd: Path | None = None) -> Iterator[RunningServer]:
    """Start `spec` serving `model_dir` on a free loopback port; stop it (and its children) afterwards."""
    port = free_port()
    env = {**os.environ, **QUIET_ENV, "NAIVE_MODEL": str(model_dir), **spec.env}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(spec.command(model_dir, port), env=env, stdout=log, stderr=subprocess.STDOUT,
                                cwd=cwd, start_new_session=True)
        rss = _RssSampler(proc.pid)
        base_url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(proc, base_url + spec.health_path, startup_timeout, log_path)
            yield RunningServer(spec, base_url, rss, time.perf_counter() - started, proc.pid)
        finally:
            rss.stop()
            _stop(proc)


def _wait_healthy(proc: subprocess.Popen, url: str, timeout: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}; see {log_path}:\n{log_path.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} not healthy after {timeout:.0f} s; see {log_path}")
        time.sleep(0.3)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's own process group (it was started in a new session), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
