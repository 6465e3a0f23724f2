"""Run `rerank-kit serve` as a real subprocess on a free loopback port, for integration tests."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx


def write_models_config(path: Path, models: list[dict[str, object]]) -> Path:
    """A RERANK_CONFIG file serving `models` ({name, path, ...} entries)."""
    import yaml

    path.write_text(yaml.safe_dump({"models": models}))
    return path


TEST_API_KEY = "test-server-secret"  # the key of conftest's keyed_server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class ServerProcess:
    """A started server: its base URL and its process, for tests that watch it (memory, signals, exit code)."""

    base_url: str
    process: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.process.pid


@contextlib.contextmanager
def running_server(model_dir: Path, *, startup_timeout: float = 90.0, log_file: Path | None = None,
                   **settings: str) -> Iterator[str]:
    """Start the server with RERANK_<KEY>=value settings; yield its base URL; stop it afterwards.

    The server's output goes to `log_file` when given (read it after the block), else to a temporary file
    (never a pipe nobody reads, which a busy server could fill and block on).
    """
    with running_server_process(model_dir, startup_timeout=startup_timeout, log_file=log_file,
                                **settings) as server:
        yield server.base_url


@contextlib.contextmanager
def running_server_process(model_dir: Path, *, startup_timeout: float = 90.0, log_file: Path | None = None,
                           port: int | None = None, **settings: str) -> Iterator[ServerProcess]:
    """`running_server`, yielding the process along with the base URL; `port` to restart on the same one."""
    port = port or free_port()
    env = {**os.environ, "RERANK_MODEL": str(model_dir), "RERANK_OFFLINE": "1", "RERANK_HOST": "127.0.0.1",
           "RERANK_PORT": str(port), "RERANK_LOG_LEVEL": "warning"}
    env.update({f"RERANK_{key.upper()}": value for key, value in settings.items()})
    with log_file.open("w+") if log_file else tempfile.TemporaryFile("w+") as output:
        proc = subprocess.Popen([sys.executable, "-m", "rerank_kit.cli", "serve"], env=env,
                                stdout=output, stderr=subprocess.STDOUT, text=True)
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + startup_timeout
            while True:
                if proc.poll() is not None:
                    output.seek(0)
                    raise RuntimeError(f"server exited with {proc.returncode}:\n{output.read()}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base_url}/health", timeout=1.0).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not become healthy in time")
                time.sleep(0.2)
            yield ServerProcess(base_url, proc)
        finally:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class QuietHandler(BaseHTTPRequestHandler):
    """A test double's request handler: no access log on stderr, and one way to answer."""

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        """Answer `payload` (bytes as they are, anything else as JSON)."""
        payload = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", "Content-Length": str(len(payload)),
                            **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A test double's HTTP server on a free loopback port, in a thread; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
