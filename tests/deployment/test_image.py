"""conf/Dockerfile built and served the way a user runs the image, without a Docker daemon or a registry.

buildah builds the unchanged Dockerfile (chroot isolation) FROM a local stand-in for python:3.11-slim
(stand_in_base.sh: Debian bookworm by debootstrap, because no image registry is reachable here), with torch from
a local wheel folder mounted for the build only. Then the image's own ENTRYPOINT runs as the image's own USER,
the tiny model mounted read-only and the ONNX export cache on a writable volume, as compose and the Helm chart
mount them: the dialects answer, the image's HEALTHCHECK passes while it serves and fails once it has stopped,
and a second container on the same cache volume starts from the export instead of exporting again.
buildah uses its default storage (overlay here); set STORAGE_DRIVER=vfs where overlay is not available.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.support.server_process import free_port

ROOT = Path(__file__).resolve().parents[2]
STAND_IN = Path(__file__).with_name("stand_in_base.sh")
IMAGE = "localhost/rerank-kit:test"
CONTAINER_PREFIX = "rerank-kit-image-test-"
WHEELS = Path(os.environ.get("RERANK_KIT_TORCH_WHEELS", "/opt/wheels"))  # torch without the PyTorch index
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
MODEL_IN_CONTAINER = "/models/tiny"
CACHE_IN_CONTAINER = "/models/.rerank-kit"  # the image's RERANK_CACHE_DIR: the test never sets it
QUERY = "what is the capital of France?"
DOCUMENTS = ["Paris is the capital and largest city of France.", "Cats sleep for most of the day.",
             "Berlin is the capital of Germany.", "France is a country in Western Europe."]
START_TIMEOUT_S = 300.0
SKIP_MESSAGE = "apt-get install buildah debootstrap (as root) to build the image"


def _require_tools() -> None:
    """CI (.ci/run sets RERANK_KIT_CI=1) installs the tools, so there a missing one is a failure, not a skip."""
    missing = [tool for tool in ("buildah", "debootstrap") if shutil.which(tool) is None]
    if not missing and os.geteuid() == 0:
        return
    why = f"missing: {', '.join(missing)}" if missing else "not root"
    if os.environ.get("RERANK_KIT_CI") == "1":
        pytest.fail(f"{SKIP_MESSAGE} ({why}; RERANK_KIT_CI=1)")
    pytest.skip(SKIP_MESSAGE)


def _run_logged(command: list[str], log: Path, say: Callable[[str], None], *, timeout: float,
                shown: tuple[str, ...] = ()) -> None:
    """Run a long step with its whole output in `log`, showing only the lines that start with `shown` (progress
    without hundreds of pip lines); on failure, the log's tail is the assertion message."""
    started = time.monotonic()
    with log.open("w") as out, subprocess.Popen(["timeout", f"{timeout:.0f}", *command], cwd=ROOT, text=True,
                                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                errors="replace") as process:
        assert process.stdout is not None
        for line in process.stdout:
            out.write(line)
            if line.startswith(shown):
                say(f"  {line.rstrip()[:160]}")
        returncode = process.wait()
    tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-40:])
    elapsed = time.monotonic() - started
    assert returncode == 0, f"{' '.join(command[:2])} exited {returncode} after {elapsed:.0f} s (log {log}):\n{tail}"
    say(f"  done in {elapsed:.0f} s")


@dataclass(frozen=True)
class Image:
    """The built image and what its config says to run: the ENTRYPOINT, the USER and the HEALTHCHECK."""

    name: str
    entrypoint: list[str]
    user: str
    uid: int
    healthcheck: list[str]
    healthcheck_timeout_s: float
    env: dict[str, str]


def _inspect(name: str) -> Image:
    config = json.loads(subprocess.run(["buildah", "inspect", "--type", "image", name], capture_output=True,
                                       text=True, check=True, timeout=60).stdout)["Docker"]["config"]
    test = config["Healthcheck"]["Test"]
    assert test[0] in ("CMD", "CMD-SHELL"), f"unexpected HEALTHCHECK {test}"
    user = config["User"]
    assert user.split(":")[0].isdigit(), f"USER {user!r}: the test needs a numeric uid to own the cache volume"
    return Image(name=name, entrypoint=config["Entrypoint"], user=user, uid=int(user.split(":")[0]),
                 healthcheck=test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]],
                 healthcheck_timeout_s=config["Healthcheck"].get("Timeout", 30 * 10**9) / 1e9,
                 env=dict(item.split("=", 1) for item in config["Env"]))


def _remove_leftover_containers() -> None:
    """Working containers of an earlier run that was killed before its clean-up (they pin the image)."""
    listing = subprocess.run(["buildah", "containers", "--format", "{{.ContainerName}}"], capture_output=True,
                             text=True, check=True, timeout=60).stdout.split()
    leftovers = [name for name in listing if name.startswith(CONTAINER_PREFIX)]
    if leftovers:
        subprocess.run(["buildah", "rm", *leftovers], capture_output=True, check=True, timeout=120)


@pytest.fixture(scope="module")
def say(pytestconfig: pytest.Config) -> Callable[[str], None]:
    """Print past pytest's capture: the build takes minutes, and CI should show how far it got."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")

    def _say(message: str) -> None:
        with capture.global_and_fixture_disabled():
            print(message, flush=True)

    return _say


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory, say: Callable[[str], None]) -> Image:
    """conf/Dockerfile built FROM the stand-in base; buildah's layer cache makes a rebuild of unchanged steps
    instant, and a cold machine (CI) goes through every step."""
    _require_tools()
    logs = tmp_path_factory.mktemp("image-build")
    _remove_leftover_containers()
    say("\n[image] stand-in for python:3.11-slim (debootstrap; cached in buildah's storage)")
    _run_logged([str(STAND_IN)], logs / "stand-in.log", say, timeout=1200, shown=("stand_in_base.sh:",))
    build = ["buildah", "bud", "--isolation", "chroot", "--pull-never", "--layers", "--format", "docker"]
    if any(WHEELS.glob("torch-*.whl")):  # mounted for the build only: the wheel never lands in a layer
        build += ["--volume", f"{WHEELS}:/wheels:ro", "--build-arg", "TORCH_FIND_LINKS=/wheels"]
    if HOST_CA_BUNDLE.is_file():  # this machine's trust store (HTTPS to PyPI may go through a proxy's CA)
        build += ["--volume", f"{HOST_CA_BUNDLE}:/etc/ssl/certs/ca-certificates.crt:ro"]
    build += ["-f", "conf/Dockerfile", "-t", IMAGE, "."]
    say(f"[image] {' '.join(build)}")
    _run_logged(build, logs / "build.log", say, timeout=2400,
                shown=("STEP ", "Successfully installed", "COMMIT", "Error", "ERROR"))
    size = subprocess.run(["buildah", "images", "--format", "{{.Size}}", IMAGE], capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()
    say(f"[image] {IMAGE}: {size}")
    return _inspect(IMAGE)


@pytest.fixture(scope="module")
def volumes(tiny_model_dir: Path, image: Image, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The model folder (readable by anyone, mounted read-only) and the cache volume, owned by the image's
    uid as compose's ./models must be."""
    model = tmp_path_factory.mktemp("volume") / "tiny"
    shutil.copytree(tiny_model_dir, model)
    for path in [model, *model.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    cache = tmp_path_factory.mktemp("volume-cache")
    os.chown(cache, image.uid, image.uid)
    return model, cache


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in sorted(folder.rglob("*"))} | {".": (0, folder.stat().st_mtime_ns)}


@dataclass
class Container:
    """One working container of the image serving on a free loopback port (chroot isolation shares the host's
    network), started with the image's ENTRYPOINT as the image's USER."""

    image: Image
    model: Path
    cache: Path
    log: Path
    name: str = field(default_factory=lambda: f"{CONTAINER_PREFIX}{uuid.uuid4().hex[:12]}")
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> list[str]:
        env = {"RERANK_MODEL": MODEL_IN_CONTAINER, "RERANK_OFFLINE": "1", "RERANK_HOST": "127.0.0.1",
               "RERANK_PORT": str(self.port), "RERANK_LOG_LEVEL": "info"}
        return [flag for key, value in env.items() for flag in ("--env", f"{key}={value}")]

    def _run(self, command: list[str], *options: str) -> list[str]:
        return ["buildah", "run", "--isolation", "chroot", "--user", self.image.user, *self._env(), *options,
                self.name, "--", *command]

    def start(self) -> None:
        subprocess.run(["buildah", "from", "--pull-never", "--name", self.name, self.image.name],
                       capture_output=True, check=True, timeout=120)
        command = self._run(self.image.entrypoint, "--volume", f"{self.model}:{MODEL_IN_CONTAINER}:ro",
                            "--volume", f"{self.cache}:{CACHE_IN_CONTAINER}:rw")
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the container exited {self.process.returncode}:\n{self.output()}"
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"no healthy server on {self.url} after {START_TIMEOUT_S:.0f} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def healthcheck(self) -> subprocess.CompletedProcess[str]:
        """The image's HEALTHCHECK command in the running container, as Docker execs it (the container's env)."""
        return subprocess.run(self._run(self.image.healthcheck), capture_output=True, text=True,
                              timeout=self.image.healthcheck_timeout_s + 60)

    def server_process(self) -> psutil.Process:
        """The server inside (buildah run -> buildah-chroot-runtime -> buildah-chroot-exec -> the ENTRYPOINT):
        buildah kills its child on a signal rather than passing SIGTERM on, so the test signals the server."""
        assert self.process is not None
        for child in psutil.Process(self.process.pid).children(recursive=True):
            if not child.name().startswith("buildah") and not Path(child.cmdline()[0]).name.startswith("buildah"):
                return child
        raise AssertionError(f"no server process under buildah run {self.process.pid}")

    def stop(self) -> int:
        """SIGTERM to the server, as `docker stop` sends it; the exit status of the container's command."""
        assert self.process is not None
        if self.process.poll() is None:
            self.server_process().send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def remove(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.stop()
            except (AssertionError, psutil.Error, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(timeout=30)
        subprocess.run(["buildah", "rm", self.name], capture_output=True, timeout=120)

    def scores(self) -> dict[str, dict[int, float]]:
        """One rerank in two dialects: TEI's /rerank (`texts`) and Cohere/OpenAI-style /v1/rerank (`documents`)."""
        tei = httpx.post(f"{self.url}/rerank", json={"query": QUERY, "texts": DOCUMENTS}, timeout=60)
        assert tei.status_code == 200, tei.text
        cohere = httpx.post(f"{self.url}/v1/rerank", json={"query": QUERY, "documents": DOCUMENTS, "model": "tiny"},
                            timeout=60)
        assert cohere.status_code == 200, cohere.text
        results = cohere.json()["results"]
        for ranked in (tei.json(), results):  # best first
            assert [r.get("score", r.get("relevance_score")) for r in ranked] == sorted(
                (r.get("score", r.get("relevance_score")) for r in ranked), reverse=True)
        assert [r["document"]["text"] for r in results] == [DOCUMENTS[r["index"]] for r in results]
        return {"tei": {r["index"]: r["score"] for r in tei.json()},
                "cohere": {r["index"]: r["relevance_score"] for r in results}}


@dataclass
class Served:
    """What one container's life showed, for the tests to assert on."""

    scores: dict[str, dict[int, float]]
    info: dict[str, Any]
    healthcheck_while_serving: subprocess.CompletedProcess[str]
    healthcheck_after_stop: subprocess.CompletedProcess[str]
    server_uid: int
    exit_code: int
    log: str


def _serve_once(image: Image, volumes: tuple[Path, Path], log: Path, say: Callable[[str], None]) -> Served:
    container = Container(image, *volumes, log=log)
    try:
        started = time.monotonic()
        container.start()
        say(f"[image] {container.name} healthy on {container.url} in {time.monotonic() - started:.0f} s")
        scores = container.scores()
        info = httpx.get(f"{container.url}/info", timeout=30).json()
        while_serving = container.healthcheck()
        server_uid = container.server_process().uids().real
        exit_code = container.stop()
        after_stop = container.healthcheck()
        return Served(scores, info, while_serving, after_stop, server_uid, exit_code, container.output())
    finally:
        container.remove()


@pytest.fixture(scope="module")
def first(image: Image, volumes: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory,
          say: Callable[[str], None]) -> tuple[Served, dict[str, tuple[int, int]]]:
    """A first container on an empty cache volume; and the model folder as it was before it."""
    before = _snapshot(volumes[0])
    return _serve_once(image, volumes, tmp_path_factory.mktemp("first") / "server.log", say), before


@pytest.fixture(scope="module")
def second(first: tuple[Served, dict[str, tuple[int, int]]], image: Image, volumes: tuple[Path, Path],
           tmp_path_factory: pytest.TempPathFactory, say: Callable[[str], None]) -> Served:
    """A second container on the same cache volume, after the first has exported and stopped."""
    return _serve_once(image, volumes, tmp_path_factory.mktemp("second") / "server.log", say)


def test_the_image_serves_from_its_entrypoint_as_its_user(image: Image, volumes: tuple[Path, Path],
                                                          first: tuple[Served, dict[str, tuple[int, int]]]) -> None:
    served, model_before = first
    assert image.env["RERANK_CACHE_DIR"] == CACHE_IN_CONTAINER, "the export cache must live on the models volume"
    assert served.server_uid == image.uid != 0
    assert served.scores["tei"] == pytest.approx(served.scores["cohere"], abs=1e-6)
    assert sorted(served.scores["tei"]) == list(range(len(DOCUMENTS)))
    assert all(0.0 <= score <= 1.0 for score in served.scores["tei"].values())
    assert served.info["models"] == ["tiny"] and served.info["device"] == "cpu", served.info
    assert served.info["backend"] == "onnx", f"auto on a CPU serves the ONNX export: {served.info}\n{served.log}"
    assert "exporting /models/tiny to ONNX Runtime" in served.log, served.log
    assert served.exit_code == 0, f"SIGTERM must stop the server cleanly:\n{served.log[-3000:]}"
    model, cache = volumes
    assert list(cache.glob("onnx/*/model.onnx")), f"no export in the cache volume {cache}"
    assert _snapshot(model) == model_before, "the server wrote into the read-only model folder"


def test_the_image_healthcheck_passes_while_serving_and_fails_once_stopped(
        first: tuple[Served, dict[str, tuple[int, int]]]) -> None:
    served, _ = first
    check = served.healthcheck_while_serving
    assert check.returncode == 0, check.stdout + check.stderr
    assert served.healthcheck_after_stop.returncode != 0, "the HEALTHCHECK passed with the server stopped"


def test_a_second_container_starts_from_the_cached_export(first: tuple[Served, dict[str, tuple[int, int]]],
                                                          second: Served, volumes: tuple[Path, Path]) -> None:
    served, model_before = first
    assert "using cached ONNX model" in second.log, second.log
    assert "exporting" not in second.log and "ONNX export" not in second.log, second.log
    assert second.info["backend"] == "onnx", second.info
    for dialect in ("tei", "cohere"):
        assert second.scores[dialect] == pytest.approx(served.scores[dialect], abs=1e-6)
    assert second.exit_code == 0, second.log[-3000:]
    assert _snapshot(volumes[0]) == model_before, "the server wrote into the read-only model folder"
