"""`rerank-kit download`: offline messages, complete folders, and real downloads from a loopback stand-in Hub.

The stand-in answers exactly the HTTP calls huggingface_hub 2.x's `snapshot_download` makes, read from its
source: `GET /api/models/{id}/revision/{rev}` (the commit sha), `GET /api/models/{id}/tree/{sha}` (the file
list), then per file `HEAD /{id}/resolve/{sha}/{file}` (it checks `X-Repo-Commit`, `ETag`, `Content-Length`)
and `GET` of the same URL; our command reads the siblings of `GET /api/models/{id}` first, to skip duplicate
weight formats. The command runs as a subprocess with `HF_ENDPOINT` pointing at it, as a user would.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from rerank_kit.commands.download import missing_files, models_of_config
from tests.support.server_process import QuietHandler, free_port, serving

REPO = "acme/tiny-reranker"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
# Formats the server never loads, which the command must not fetch.
NEVER_FETCHED = {"pytorch_model.bin": b"duplicate weights", "onnx/model.onnx": b"onnx export"}


class StandInHub:
    """Serves a repository built from a model folder, and counts the file bodies it sends."""

    def __init__(self, model_dir: Path, *, slow: str | None = None) -> None:
        self.files = {p.name: p.read_bytes() for p in model_dir.iterdir() if p.is_file()} | NEVER_FETCHED
        self.bodies_sent: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.slow = slow  # this file's body comes in 10 pieces over 2 s, so that a test can interrupt it

    def handler(self) -> type[QuietHandler]:
        hub = self

        class Handler(QuietHandler):
            def _file(self) -> str | None:
                prefix = f"/{REPO}/resolve/{COMMIT}/"
                path = urlsplit(self.path).path
                return path[len(prefix):] if path.startswith(prefix) and path[len(prefix):] in hub.files else None

            def _file_headers(self, name: str) -> None:
                body = hub.files[name]
                self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{hashlib.sha1(body).hexdigest()}"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()

            def do_HEAD(self) -> None:
                name = self._file()
                if name is None:
                    self._reply(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
                else:
                    self._file_headers(name)

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path in (f"/api/models/{REPO}", f"/api/models/{REPO}/revision/main"):
                    self._reply(200, {"id": REPO, "sha": COMMIT,
                                      "siblings": [{"rfilename": name} for name in sorted(hub.files)]})
                elif path == f"/api/models/{REPO}/tree/{COMMIT}":
                    self._reply(200, [{"type": "file", "path": name, "size": len(body),
                                       "oid": hashlib.sha1(body).hexdigest()} for name, body in hub.files.items()])
                elif (name := self._file()) is not None:
                    with hub.lock:
                        hub.bodies_sent[name] += 1
                    self._file_headers(name)
                    body, pieces = hub.files[name], 10 if name == hub.slow else 1
                    for piece in range(pieces):
                        self.wfile.write(body[piece * len(body) // pieces:(piece + 1) * len(body) // pieces])
                        self.wfile.flush()
                        time.sleep(0.2 if pieces > 1 else 0)
                else:
                    self._reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})

        return Handler


# A test that ran load_backend(offline=True) in this process left HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE set.
_HUB_SETTINGS = ("HF_", "RERANK_", "TRANSFORMERS_")


def download(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_HUB_SETTINGS)}
    return subprocess.run([sys.executable, "-m", "rerank_kit.cli", "download", *args], capture_output=True,
                          text=True, timeout=120, env={**clean, **env})


@pytest.fixture()
def hub(tiny_model_dir: Path) -> StandInHub:
    return StandInHub(tiny_model_dir)


def test_downloads_with_progress_then_resumes_keeping_complete_files(hub: StandInHub, tiny_model_dir: Path,
                                                                    tmp_path: Path) -> None:
    env = {"HF_HOME": str(tmp_path / "hf"), "TQDM_POSITION": "-1"}  # TQDM_POSITION=-1: bars even without a TTY
    with serving(hub.handler()) as endpoint:
        first = download(REPO, "--to", str(tmp_path / "models"), HF_ENDPOINT=endpoint, **env)
        folder = tmp_path / "models" / "tiny-reranker"
        assert first.returncode == 0, first.stderr
        assert first.stdout.splitlines() == [str(folder)]
        model_files = {p.name for p in tiny_model_dir.iterdir() if p.is_file()}
        assert f"Fetching {len(model_files)} files: 100%" in first.stderr  # huggingface_hub's own progress bar
        assert f"RERANK_MODEL={folder}" in first.stderr
        assert set(hub.bodies_sent) == model_files  # the duplicate formats were never fetched
        for name in model_files:
            assert (folder / name).read_bytes() == (tiny_model_dir / name).read_bytes()
        assert not (folder / "pytorch_model.bin").exists() and not (folder / "onnx").exists()
        assert missing_files(folder) == []

        (folder / "model.safetensors").unlink()  # an interrupted run: one file never arrived
        again = download(REPO, "--to", str(tmp_path / "models"), HF_ENDPOINT=endpoint, **env)
    assert again.returncode == 0, again.stderr
    assert hub.bodies_sent["model.safetensors"] == 2
    assert all(hub.bodies_sent[name] == 1 for name in model_files - {"model.safetensors"})
    assert (folder / "model.safetensors").read_bytes() == (tiny_model_dir / "model.safetensors").read_bytes()


def test_an_interrupted_download_says_how_to_resume(tiny_model_dir: Path, tmp_path: Path) -> None:
    """^C: huggingface_hub finishes the files in flight, the command exits 130, and a re-run fetches nothing."""
    hub = StandInHub(tiny_model_dir, slow="model.safetensors")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_HUB_SETTINGS)}
    with serving(hub.handler()) as endpoint:
        env = {**clean, "HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf")}
        process = subprocess.Popen([sys.executable, "-m", "rerank_kit.cli", "download", REPO, "--to",
                                    str(tmp_path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not hub.bodies_sent["model.safetensors"] and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)  # while the slow file is on its way
        out, err = process.communicate(timeout=60)
        assert process.returncode == 130 and out == ""
        assert "interrupted; the same command resumes acme/tiny-reranker" in err
        again = download(REPO, "--to", str(tmp_path), HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf"))
    assert again.returncode == 0, again.stderr
    assert missing_files(tmp_path / "tiny-reranker") == []
    assert max(hub.bodies_sent.values()) == 1  # nothing fetched twice


def test_a_complete_folder_needs_no_network(hub: StandInHub, tiny_model_dir: Path, tmp_path: Path) -> None:
    """A local folder is checked, not fetched; a downloaded one is found again offline, even with the Hub down."""
    local = download(str(tiny_model_dir), RERANK_OFFLINE="1")
    assert local.returncode == 0, local.stderr
    assert local.stdout.splitlines() == [str(tiny_model_dir.resolve())]

    env = {"HF_HOME": str(tmp_path / "hf")}
    with serving(hub.handler()) as endpoint:
        assert download(REPO, HF_ENDPOINT=endpoint, **env).returncode == 0  # into the Hugging Face cache
    cached = download(REPO, RERANK_OFFLINE="1", **env)
    unreachable = download(REPO, HF_ENDPOINT=f"http://127.0.0.1:{free_port()}", **env)
    for result in (cached, unreachable):
        assert result.returncode == 0, result.stderr
        (path,) = result.stdout.splitlines()
        assert f"models--acme--tiny-reranker/snapshots/{COMMIT}" in path and missing_files(Path(path)) == []


def test_offline_says_at_once_what_is_missing_and_how_to_copy_it_in(tmp_path: Path) -> None:
    offline = download("BAAI/bge-reranker-v2-m3", "--to", str(tmp_path), RERANK_OFFLINE="1",
                       HF_HOME=str(tmp_path / "hf"))
    assert offline.returncode == 1 and offline.stdout == ""
    assert "offline (RERANK_OFFLINE or HF_HUB_OFFLINE is set)" in offline.stderr
    assert f"{tmp_path / 'bge-reranker-v2-m3'} does not exist" in offline.stderr
    assert "rerank-kit download BAAI/bge-reranker-v2-m3 --to ./models" in offline.stderr
    assert f"RERANK_MODEL={tmp_path / 'bge-reranker-v2-m3'} RERANK_OFFLINE=1" in offline.stderr

    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    result = download(str(partial))
    assert result.returncode == 1
    assert "lacks the weights (model.safetensors or pytorch_model.bin), a tokenizer" in result.stderr

    unreachable = download("BAAI/bge-reranker-v2-m3", HF_ENDPOINT=f"http://127.0.0.1:{free_port()}",
                           HF_HOME=str(tmp_path / "hf"))
    assert unreachable.returncode == 1
    assert "the Hub is unreachable (ConnectError" in unreachable.stderr and "not in the Hugging Face cache" in (
        unreachable.stderr)


def test_every_model_of_a_models_file(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "models.yaml"
    config.write_text(f"models:\n  - name: tiny\n    path: {tiny_model_dir}\n"
                      f"  - name: missing\n    path: {tmp_path / 'nowhere'}\n    kind: cross-encoder\n")
    assert models_of_config(config) == [str(tiny_model_dir), str(tmp_path / "nowhere")]
    result = download(RERANK_CONFIG=str(config), RERANK_OFFLINE="1")
    assert result.returncode == 1  # one of the two is not there; the other is still reported ready
    assert result.stdout.splitlines() == [str(tiny_model_dir.resolve())]
    assert f"{tmp_path / 'nowhere'} does not exist" in result.stderr

    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps({"models": [{"name": "x"}]}))
    usage = download("--config", str(bad))
    assert usage.returncode == 2 and "models[0] has no `path`" in usage.stderr
