"""The Helm chart's pod against a real server: the server runs with only the volumes the chart makes writable, and the
autoscaler's metric is one the server exports (tests/repo/test_deploy.py checks the chart itself)."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.helm_chart import EXAMPLES, env_of, objects, one
from tests.support.server_process import running_server

pytest.importorskip("helm_python", reason="helm-python-sdk (Helm's Go SDK) is not installed")


def test_the_server_runs_with_only_the_volumes_the_chart_makes_writable(
        tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """readOnlyRootFilesystem: the server writes only under /models (HF_HOME, RERANK_CACHE_DIR) and /tmp.

    The pod's environment, with /models moved under tmp_path and an unwritable HOME, runs a real server
    (including a first ONNX export when the backend chooses one) that answers a rerank.
    """
    models = tmp_path / "models"
    shutil.copytree(tiny_model_dir, models / "tiny")
    server = one(objects({}), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    paths = {k: str(v).replace("/models", str(models), 1) for k, v in env_of(server).items()
             if isinstance(v, str) and v.startswith("/models")}
    assert {"RERANK_MODEL", "RERANK_CACHE_DIR", "HF_HOME"} <= set(paths)
    monkeypatch.setenv("HOME", "/dev/null/home")  # nothing can be created under it
    monkeypatch.setenv("HF_HOME", paths["HF_HOME"])
    with running_server(models / "tiny", cache_dir=paths["RERANK_CACHE_DIR"], device="cpu") as base_url:
        answer = httpx.post(f"{base_url}/rerank", json={"query": "paris", "texts": ["paris", "cat"]}, timeout=30)
    assert answer.status_code == 200 and len(answer.json()) == 2


def test_the_autoscaler_metric_is_what_the_server_exports(live_server: str) -> None:
    """The HPA's, the adapter rule's and KEDA's metric name against a real server's /metrics."""
    exported = {line.split()[2] for line in httpx.get(f"{live_server}/metrics", timeout=10).text.splitlines()
                if line.startswith("# TYPE")}
    adapter_rule = yaml.safe_load((EXAMPLES / "prometheus-adapter.yaml").read_text())["rules"]["custom"][0]
    assert adapter_rule["seriesQuery"].split("{")[0] in exported
    hpa = one(objects({"autoscaling": {"enabled": True}}), "HorizontalPodAutoscaler")
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] in exported
