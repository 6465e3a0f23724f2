"""Test helpers: scratch copies of the RAGFlow stand-in, importing them as RAGFlow does, counting requests."""

from __future__ import annotations

import contextlib
import http.server
import importlib
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx

from rerank_kit.cli import main as rerank_kit_main

HERE = Path(__file__).parent
TREE = HERE / "tree"
LEGACY_RERANK_MODEL = HERE / "legacy_rerank_model.py"
VERSIONS = ("v0.22", "v0.26+")


def make_tree(dest: Path, version: str = "v0.26+") -> Path:
    """A scratch RAGFlow tree of the given `Base` contract."""
    shutil.copytree(TREE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    if version == "v0.22":
        shutil.copyfile(LEGACY_RERANK_MODEL, dest / "rag/llm/rerank_model.py")
    return dest


def docker_folder(tmp_path: Path) -> Path:
    """A scratch copy of the stand-in's Docker folder (RAGFlow's docker/)."""
    folder = tmp_path / "deploy"
    shutil.copytree(TREE / "docker", folder)
    return folder


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root (bytecode caches aside) and its bytes."""
    return {path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*")) if path.is_file() and "__pycache__" not in path.parts}


def install_ragflow(root: Path, *options: str) -> int:
    """Run `rerank-kit install-ragflow ROOT OPTIONS...` in this process."""
    return rerank_kit_main(["install-ragflow", str(root), *options])


@contextlib.contextmanager
def imported_ragflow(root: Path) -> Iterator[ModuleType]:
    """Import the tree's `rag.llm` (running its registration scan); forget it afterwards."""
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("rag.llm")
    finally:
        sys.path.remove(str(root))
        for name in [name for name in sys.modules if name == "rag" or name.startswith("rag.")]:
            del sys.modules[name]


class RequestLog:
    def __init__(self) -> None:
        self.posts: list[str] = []


@contextlib.contextmanager
def counting_proxy(target: str) -> Iterator[tuple[str, RequestLog]]:
    """A loopback HTTP proxy in front of `target` that records the path of every POST it forwards."""
    log = RequestLog()
    upstream = httpx.Client(base_url=target, timeout=60.0)

    class Forward(http.server.BaseHTTPRequestHandler):
        def _forward(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if method == "POST":
                log.posts.append(self.path)
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")}
            reply = upstream.request(method, self.path, content=body, headers=headers)
            self.send_response(reply.status_code)
            self.send_header("Content-Type", reply.headers.get("content-type", "application/json"))
            self.send_header("Content-Length", str(len(reply.content)))
            self.end_headers()
            self.wfile.write(reply.content)

        def do_GET(self) -> None:
            self._forward("GET")

        def do_POST(self) -> None:
            self._forward("POST")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", log
    finally:
        server.shutdown()
        server.server_close()
        upstream.close()
