"""The offline .difypkg (`rerank-kit package-dify --offline`), tested as Dify's daemon installs it with no
package index: unpacked, a Python 3.12 venv made by uv, `uv pip install -r requirements.txt` run in the
package folder with the network index disabled, then the plugin driven over stdio against a live server.
The model plugin's package is installed and resolved for every target platform; the workflow tool's, signed,
is installed and run the same way. What the package holds: tests/unit/rerank_kit/commands/test_wheels.py.

The first run downloads the wheels from PyPI into ~/.cache/rerank-kit/wheels (~20 MB); later runs build
from that cache. `make test` points RERANK_KIT_DIFY_PYTHON at `.venv-dify/bin/python` (Python 3.12).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from uv import find_uv_bin

from rerank_kit.commands import dify_signature, difypkg
from rerank_kit.commands.wheels import (
    WHEELS_DIR,
    Offline,
    Platform,
    manifest_platforms,
    normalise,
    requirement_pins,
)
from tests.support import REPO_ROOT
from tests.support.dify_stdio import (
    DOCS,
    PROVIDER,
    QUERY,
    PluginProcess,
    credentials,
    ranking,
    require_dify_python,
    rerank_request,
    server_ranking,
    unpack,
)

UNREACHABLE_INDEX = "http://127.0.0.1:9/simple"  # the discard port: nothing answers
UV_TIMEOUT = 300
TARGETS = manifest_platforms(yaml.safe_load((REPO_ROOT / "manifest.yaml").read_bytes()))  # the default platforms
SIGNING = REPO_ROOT.parent / "shared" / "reference" / "dify-signature" / "test_key_pair_1"  # the daemon's test keys


@pytest.fixture(scope="module")
def pins() -> dict[str, str | None]:
    return requirement_pins((REPO_ROOT / "dify_plugin" / "requirements.txt").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def plugin_root(offline_package: difypkg.Package, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return unpack(offline_package.path, tmp_path_factory.mktemp("plugin-root"))


def uv(*args: str, cwd: Path, offline: bool = True) -> str:
    """uv with what the daemon gives it (PATH, VIRTUAL_ENV), an empty uv cache and no reachable index."""
    env = {"PATH": os.environ["PATH"], "VIRTUAL_ENV": str(cwd / ".venv"), "UV_NO_CONFIG": "1",
           "UV_INDEX_URL": UNREACHABLE_INDEX, "UV_PYTHON_DOWNLOADS": "never",
           "UV_CACHE_DIR": str(cwd.parent / "uv-cache"), **({"UV_OFFLINE": "1"} if offline else {})}
    result = subprocess.run([find_uv_bin(), *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=UV_TIMEOUT, check=False)
    assert result.returncode == 0, f"uv {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def daemon_install(root: Path) -> Path:
    """The daemon's steps: `uv venv .venv --python 3.12`, then `uv pip install [-i MIRROR] -r requirements.txt`."""
    uv("venv", ".venv", "--python", require_dify_python(), cwd=root)
    uv("pip", "install", "-i", UNREACHABLE_INDEX, "-r", "requirements.txt", cwd=root)
    return root / ".venv" / "bin" / "python"


@pytest.fixture(scope="module")
def plugin_python(plugin_root: Path) -> Path:
    return daemon_install(plugin_root)


@pytest.fixture(scope="module")
def plugin(plugin_python: Path, plugin_root: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[PluginProcess]:
    process = PluginProcess(str(plugin_python), plugin_root, tmp_path_factory.mktemp("logs") / "plugin.stderr")
    yield process
    process.stop()


def wheel_files(package: difypkg.Package) -> list[str]:
    return [name.removeprefix(WHEELS_DIR) for name in package.files if name.startswith(WHEELS_DIR)]


def test_it_installs_the_pinned_versions_with_no_index(plugin_python: Path, plugin_root: Path,
                                                       pins: dict[str, str | None]) -> None:
    frozen = uv("pip", "freeze", "--python", str(plugin_python), cwd=plugin_root)
    installed = dict(line.split("==") for line in frozen.splitlines())
    assert {normalise(name): version for name, version in installed.items()} == pins


@pytest.mark.parametrize("platform", TARGETS, ids=lambda p: p.tag)
def test_the_wheels_cover_every_target_platform(plugin_root: Path, pins: dict[str, str | None],
                                                platform: Platform) -> None:
    """Resolution for each target without installing; no UV_OFFLINE, so only the file's --no-index keeps uv
    off the (unreachable) index the daemon would pass as PIP_MIRROR_URL."""
    resolved = uv("pip", "compile", "--no-header", "--no-annotate", "-i", UNREACHABLE_INDEX, "--python-version",
                  "3.12", "--python-platform", f"{platform.machine}-manylinux_2_{platform.glibc_minor}",
                  "requirements.txt", cwd=plugin_root, offline=False)
    assert dict(
        (normalise(name), version) for name, version in (line.split("==") for line in resolved.splitlines())
    ) == pins


def test_the_installed_plugin_validates_and_reranks_over_stdio(plugin: PluginProcess, plugin_python: Path,
                                                               live_server: str) -> None:
    assert plugin.manifest["name"] == PROVIDER
    validated = plugin.request({"type": "model", "action": "validate_provider_credentials", "provider": PROVIDER,
                                "credentials": credentials(live_server)})
    assert validated.data["result"] is True
    model = httpx.get(f"{live_server}/info").json()["model_id"]
    reply = plugin.request(rerank_request(model, credentials(live_server), top_n=2, score_threshold=0.0))
    assert ranking(reply) == server_ranking(live_server)[:2]


def test_the_signed_offline_tool_package_installs_with_no_index_and_runs_over_stdio(
        offline_package: difypkg.Package, live_server: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """`package-dify --tool --offline --sign`: the same wheels (from the cache), verified, installed, run."""
    key = dify_signature.load_private_key(SIGNING.with_name(f"{SIGNING.name}.private.pem"))
    package = difypkg.build(tmp_path_factory.mktemp("tool-dist"), offline=Offline(), plugin=difypkg.TOOL, sign_key=key)
    assert package.path.name == "rerank_kit_tools-0.1.0-offline-amd64-arm64.signed.difypkg"
    assert package.path.stat().st_size < difypkg.MAX_UNCOMPRESSED_BYTES
    assert wheel_files(package) == wheel_files(offline_package)  # the tool shares the model plugin's pins
    dify_signature.verify(package.path, dify_signature.public_keys([SIGNING.with_name(f"{SIGNING.name}.public.pem")]))
    root = unpack(package.path, tmp_path_factory.mktemp("tool-root"))
    process = PluginProcess(str(daemon_install(root)), root, tmp_path_factory.mktemp("tool-logs") / "tool.stderr")
    try:
        creds = credentials(live_server)
        assert process.request({"type": "tool", "action": "validate_tool_credentials", "provider": "rerank_kit_tools",
                                "credentials": creds}).data == {"result": True}
        reply = process.request({"type": "tool", "action": "invoke_tool", "provider": "rerank_kit_tools",
                                 "tool": "rerank", "credentials": creds,
                                 "tool_parameters": {"query": QUERY, "documents": DOCS, "top_n": 2}})
    finally:
        process.stop()
    variable = next(s["message"] for s in reply.streams if s["type"] == "variable")
    assert [(item["index"], item["score"]) for item in variable["variable_value"]] == server_ranking(live_server)[:2]
