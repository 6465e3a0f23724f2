"""A packaged Dify plugin driven as Dify's plugin daemon drives it: the .difypkg unpacked, `python -m main`
started in it (INSTALL_METHOD=local) and spoken to in stdin/stdout JSON lines. Shared by the end-to-end
tests of the plain packages (tests/e2e/dify/test_plugin_stdio.py, test_tool_stdio.py) and of the offline ones
(test_offline_package.py).
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import subprocess
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.other_pythons import python_named_by

PROVIDER = "local_reranker"
QUERY = "what is the capital of france"
DOCS = ["the cat sat on the mat", "paris is the capital city of france", "rain and cloud today",
        "python server client token batch"]
REPLY_TIMEOUT = 60.0


def require_dify_python() -> str:
    """The Python 3.12 with dify-plugin 0.10.x that `make test` names in RERANK_KIT_DIFY_PYTHON."""
    return python_named_by("RERANK_KIT_DIFY_PYTHON", "a Python 3.12 with dify-plugin 0.10.x "
                                                     "(`make test` sets it to .venv-dify/bin/python)")


def unpack(package: Path, root: Path) -> Path:
    """The .difypkg extracted into `root`, as the daemon unpacks it into its working directory."""
    with zipfile.ZipFile(package) as archive:
        archive.extractall(root)
    return root


@dataclass
class Reply:
    """What the plugin answered in one session: stream payloads, or the error payload."""

    streams: list[dict[str, Any]]
    error: dict[str, Any] | None

    @property
    def data(self) -> dict[str, Any]:
        assert self.error is None, f"plugin answered with an error: {self.error}"
        assert len(self.streams) == 1, self.streams
        return self.streams[0]


class PluginProcess:
    """A `python -m main` plugin process driven like Dify's plugin daemon over stdio."""

    def __init__(self, python: str, root: Path, log: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        self._stderr = log.open("w")
        self.proc = subprocess.Popen([python, "-m", "main"], cwd=root, env={**env, "INSTALL_METHOD": "local"},
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self._ids = itertools.count(1)
        threading.Thread(target=self._read, daemon=True).start()
        self.manifest = self._next(timeout=REPLY_TIMEOUT)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            if raw.strip():
                self._lines.put(json.loads(raw))

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output from the plugin in {timeout}s (exit code {self.proc.poll()})") from None

    def request(self, data: dict[str, Any]) -> Reply:
        """Send one request line; collect this session's messages until its `end`."""
        session_id = f"s{next(self._ids)}"
        line = {"session_id": session_id, "event": "request", "conversation_id": None, "message_id": None,
                "app_id": None, "endpoint_id": None, "context": {}, "data": {"user_id": "u1", **data}}
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(line) + "\n").encode())
        self.proc.stdin.flush()
        streams, error = [], None
        while True:
            message = self._next(timeout=REPLY_TIMEOUT)
            if message.get("event") != "session" or message.get("session_id") != session_id:
                continue  # logs, heartbeats
            kind, payload = message["data"]["type"], message["data"]["data"]
            if kind == "end":
                return Reply(streams, error)
            if kind == "error":
                error = payload
            else:
                streams.append(payload)

    def stop(self) -> None:
        self.proc.terminate()  # on stdin EOF the SDK keeps running: it must be signalled
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()



def credentials(server_url: str, api_key: str = "") -> dict[str, str]:
    return {"server_url": server_url, "api_key": api_key, "timeout": "30", "max_retries": "1"}


def model_request(action: str, model: str, creds: dict[str, str], **data: Any) -> dict[str, Any]:
    return {"type": "model", "action": action, "provider": PROVIDER, "model_type": "rerank", "model": model,
            "credentials": creds, **data}


def rerank_request(model: str, creds: dict[str, str], *, top_n: int, score_threshold: float) -> dict[str, Any]:
    return model_request("invoke_rerank", model, creds, query=QUERY, docs=DOCS, top_n=top_n,
                         score_threshold=score_threshold)


def server_ranking(base_url: str) -> list[tuple[int, float]]:
    """(index, score) as the server itself ranks QUERY/DOCS, best first."""
    body = httpx.post(f"{base_url}/rerank", json={"query": QUERY, "documents": DOCS}).json()
    return [(r["index"], r["relevance_score"]) for r in body["results"]]


def ranking(reply: Reply) -> list[tuple[int, float]]:
    return [(doc["index"], doc["score"]) for doc in reply.data["docs"]]

