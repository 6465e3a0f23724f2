"""The Helm chart (deploy/helm/rerank-kit) rendered by Helm's own Go SDK through deploy/render_manifests.py, and the
objects it renders; rendering needs helm-python-sdk (a test using it skips without, as pytest.importorskip says)."""

from __future__ import annotations

import importlib.util
from typing import Any

import yaml

from tests.support import REPO_ROOT

CHART = REPO_ROOT / "deploy" / "helm" / "rerank-kit"
EXAMPLES = REPO_ROOT / "deploy" / "helm" / "examples"


def _render_module() -> Any:
    spec = importlib.util.spec_from_file_location("render_manifests", REPO_ROOT / "deploy" / "render_manifests.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render_manifests = _render_module()

def objects(values: dict[str, Any]) -> list[dict[str, Any]]:
    docs = [yaml.safe_load_all(text) for text in render_manifests.render(values).values()]
    return [doc for stream in docs for doc in stream if doc]


def one(found: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (match,) = [o for o in found if o["kind"] == kind]
    return match


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}
