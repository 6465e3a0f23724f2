"""One set of defaults: compose, the image, Helm (and the plain manifests rendered from it), the env file the
install scripts write and the install scripts' own options choose what a bare `rerank-kit serve` chooses,
unless the user sets something. A setting a deployment must set otherwise (where the model and the export
cache live, a device chosen by the chart's gpu switch) is listed here with its reason and checked apart."""

from __future__ import annotations

import importlib.util
import re
from typing import Any

import pytest
import yaml

from local_server.settings import Settings
from tests.support import REPO_ROOT as ROOT

MODELS_VOLUME = "/models"
CACHE_ON_THE_VOLUME = "/models/.rerank-kit"

# Set by a deployment on purpose, each checked by its own test below.
WHERE_THINGS_LIVE = {
    "RERANK_MODEL": "Helm points at the folder its init container downloads the default model into",
    "RERANK_OFFLINE": "Helm downloads in an init container, then serves offline",
    "RERANK_CACHE_DIR": "containers keep the export cache on the models volume, shared by restarts and replicas",
    "RERANK_DEVICE": "Helm's gpu switch picks cpu or cuda (what auto picks on such a node)",
    "RERANK_PUBLIC_ROUTES": "Helm opens /metrics for the scrape when metrics are enabled",
}


def server_default(variable: str) -> str:
    """A RERANK_* setting's default as an environment value."""
    value = Settings.model_fields[variable.removeprefix("RERANK_").lower()].default
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "" if value is None else str(value)


def compose_env() -> dict[str, str]:
    """The compose file's environment with its `${VAR:-default}` defaults filled in."""
    service = yaml.safe_load((ROOT / "conf" / "docker-compose.server.yml").read_text())["services"]["rerank-kit"]
    return {name: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value)) for name, value in service["environment"].items()}


def env_example() -> dict[str, str]:
    """The settings conf/server.env.example sets (the install scripts copy it); commented lines are examples."""
    lines = (ROOT / "conf" / "server.env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if re.match(r"RERANK_\w+=", line))


def dockerfile_env() -> dict[str, str]:
    text = (ROOT / "conf" / "Dockerfile").read_text().replace("\\\n", " ")
    pairs = [pair for line in text.splitlines() if line.startswith("ENV ") for pair in line[4:].split()]
    return dict(pair.split("=", 1) for pair in pairs)


def helm_env(values: dict[str, Any]) -> dict[str, str]:
    pytest.importorskip("helm_python", reason="helm-python-sdk (Helm's Go SDK) is not installed")
    spec = importlib.util.spec_from_file_location("render_manifests", ROOT / "deploy" / "render_manifests.py")
    assert spec and spec.loader
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    documents = [doc for text in render.render(values).values() for doc in yaml.safe_load_all(text) if doc]
    (deployment,) = [doc for doc in documents if doc["kind"] == "Deployment"]
    (server,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "rerank-kit"]
    return {item["name"]: item["value"] for item in server["env"] if "value" in item}


def drifted(deployed: dict[str, str]) -> dict[str, tuple[str, str]]:
    """RERANK_* values the server reads otherwise than its defaults, outside WHERE_THINGS_LIVE:
    {name: (set, default)}."""
    def read(variable: str, value: str) -> object:
        field = variable.removeprefix("RERANK_").lower()
        return getattr(Settings(**{field: value}), field)

    return {name: (value, server_default(name)) for name, value in deployed.items()
            if name.startswith("RERANK_") and name not in WHERE_THINGS_LIVE
            and read(name, value) != Settings.model_fields[name.removeprefix("RERANK_").lower()].default}


@pytest.mark.parametrize("source", [compose_env, env_example, dockerfile_env])
def test_every_default_a_deployment_file_sets_is_the_servers_own(source) -> None:
    deployed = source()
    assert deployed, f"{source.__name__} read nothing"
    assert drifted(deployed) == {}


def test_the_chart_sets_no_default_of_its_own() -> None:
    assert drifted(helm_env({})) == {}
    assert drifted(helm_env({"metrics": {"enabled": False}})) == {}


def test_the_default_backend_is_the_fast_path_everywhere() -> None:
    """The drift the tests missed before: compose served torch while the README promised ONNX Runtime."""
    assert Settings.model_fields["backend"].default == "auto"
    for source in (compose_env(), env_example()):
        assert source.get("RERANK_BACKEND", "auto") == "auto"
        assert source.get("RERANK_ONNX_QUANTIZE", "none") == "none"
    assert "RERANK_BACKEND" not in helm_env({}) and "RERANK_ONNX_QUANTIZE" not in helm_env({})


def test_the_model_and_port_defaults_are_the_servers() -> None:
    model, port = server_default("RERANK_MODEL"), server_default("RERANK_PORT")
    shell = (ROOT / "scripts" / "install_server.sh").read_text()
    assert f'model="{model}"' in shell and f"port={port}\n" in shell
    powershell = (ROOT / "scripts" / "install_server.ps1").read_text()
    assert f'[string]$Model = "{model}"' in powershell and f"[int]$Port = {port}" in powershell
    assert compose_env()["RERANK_MODEL"] == env_example()["RERANK_MODEL"] == model
    values = yaml.safe_load((ROOT / "deploy" / "helm" / "rerank-kit" / "values.yaml").read_text())
    assert values["model"]["id"] == model and values["server"]["port"] == int(port)
    assert helm_env({})["RERANK_MODEL"] == f"{MODELS_VOLUME}/{model.rsplit('/', 1)[-1]}"
    assert dockerfile_env()["RERANK_PORT"] == port


def test_containers_cache_the_export_on_the_models_volume() -> None:
    """A restart, a recreated container or a new replica reuses the export instead of exporting again."""
    assert dockerfile_env()["RERANK_CACHE_DIR"] == CACHE_ON_THE_VOLUME
    assert compose_env()["RERANK_CACHE_DIR"] == CACHE_ON_THE_VOLUME
    service = yaml.safe_load((ROOT / "conf" / "docker-compose.server.yml").read_text())["services"]["rerank-kit"]
    assert any(volume.endswith(f":{MODELS_VOLUME}") for volume in service["volumes"])
    assert helm_env({})["RERANK_CACHE_DIR"] == CACHE_ON_THE_VOLUME
    assert dockerfile_env()["HF_HOME"] == helm_env({})["HF_HOME"] == f"{MODELS_VOLUME}/hf-cache"


def test_the_charts_own_settings_are_what_auto_would_choose() -> None:
    env = helm_env({})
    assert env["RERANK_DEVICE"] == "cpu" and env["RERANK_OFFLINE"] == "true"
    assert helm_env({"gpu": {"enabled": True}})["RERANK_DEVICE"] == "cuda"
    assert helm_env({"metrics": {"enabled": True}})["RERANK_PUBLIC_ROUTES"] == server_default(
        "RERANK_PUBLIC_ROUTES") + ",/metrics"
