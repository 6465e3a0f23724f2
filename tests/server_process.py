"""Run `rerank-kit serve` as a real subprocess on a free loopback port, for integration tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(model_dir: Path, *, startup_timeout: float = 90.0, log_file: Path | None = None,
                   **settings: str) -> Iterator[str]:
    """Start the server with RERANK_<KEY>=value settings; yield its base URL; stop it afterwards.

    The server's output goes to `log_file` when given (read it after the block), else to a pipe.
    """
    port = free_port()
    env = {**os.environ, "RERANK_MODEL": str(model_dir), "RERANK_OFFLINE": "1", "RERANK_HOST": "127.0.0.1",
           "RERANK_PORT": str(port), "RERANK_LOG_LEVEL": "warning"}
    env.update({f"RERANK_{key.upper()}": value for key, value in settings.items()})
    output = log_file.open("w") if log_file else subprocess.PIPE
    proc = subprocess.Popen([sys.executable, "-m", "rerank_kit.cli", "serve"], env=env,
                            stdout=output, stderr=subprocess.STDOUT, text=True)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                logs = log_file.read_text() if log_file else proc.stdout.read()
                raise RuntimeError(f"server exited with {proc.returncode}:\n{logs}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base_url}/health", timeout=1.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become healthy in time")
            time.sleep(0.2)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log_file:
            output.close()
