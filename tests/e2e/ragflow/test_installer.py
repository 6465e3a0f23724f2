"""`rerank-kit install-ragflow` end to end: a patched tree (source or Docker folder) registers the class and scores
against a live server in a fresh interpreter, scripts/install_ragflow.sh runs the installer, and a running
server's models become RAGFlow models."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ragflow_integration import deployment
from ragflow_integration.rerank_model import BASE_URL_ENV, FACTORY_NAME
from tests.support import REPO_ROOT
from tests.support.ragflow_standin.harness import VERSIONS, docker_folder, install_ragflow, make_tree, snapshot

# Run inside a patched tree (cwd): import rag.llm as RAGFlow does and score like the add-model check.
SCORE_IN_RAGFLOW = """
import json, sys
import rag.llm, rerank_kit
cls = rag.llm.RerankModel[sys.argv[1]]
arr, tokens = cls("", "BAAI/bge-reranker-v2-m3", base_url=sys.argv[2]).similarity(
    "What's the weather?", ["Is it sunny today?", "The invoice is attached."])
print(json.dumps({"class": cls.__name__, "module": cls.__module__, "client": rerank_kit.__file__,
                  "scores": arr.tolist(), "tokens": tokens}))
"""


def score_in_ragflow(python_root: Path, base_url: str) -> dict:
    """Run SCORE_IN_RAGFLOW in a fresh interpreter whose first import path is python_root."""
    done = subprocess.run([sys.executable, "-c", SCORE_IN_RAGFLOW, FACTORY_NAME, base_url], cwd=python_root,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assert_scored(result: dict, python_root: Path) -> None:
    assert result["class"] == "RerankKitRerank" and result["module"] == "rag.llm.rerank_model"
    assert Path(result["client"]).is_relative_to(python_root)  # the copied client, not this checkout's
    assert len(result["scores"]) == 2 and all(0.0 <= s <= 1.0 for s in result["scores"])
    assert result["tokens"] > 0


@pytest.mark.parametrize("version", VERSIONS)
def test_patched_tree_registers_and_scores_in_a_fresh_interpreter(tmp_path: Path, version: str,
                                                                   live_server: str) -> None:
    """The done-criterion: RerankModel["rerank-kit"] is the class, scoring against a live server."""
    root = make_tree(tmp_path / "ragflow", version)
    assert install_ragflow(root) == 0
    assert_scored(score_in_ragflow(root, live_server), root)


def container_view(folder: Path, image_root: Path, dest: Path) -> Path:
    """What the container sees: the image's /ragflow with the override's bind mounts laid over it."""
    shutil.copytree(image_root, dest)
    override = yaml.safe_load((folder / deployment.COMPOSE_OVERRIDE).read_text(encoding="utf-8"))
    (volumes,) = {tuple(spec["volumes"]) for spec in override["services"].values()}
    for volume in volumes:
        host, container, mode = volume.split(":")
        assert mode == "ro" and container.startswith(f"{deployment.CONTAINER_ROOT}/")
        target = dest / container.removeprefix(f"{deployment.CONTAINER_ROOT}/")
        source = (folder / host).resolve()
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(source, target)
    return dest


def test_docker_folder_gets_staged_files_and_a_compose_override(tmp_path: Path, live_server: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    folder = docker_folder(tmp_path)
    image_root = make_tree(tmp_path / "image")  # stands for /ragflow inside the image
    pristine = snapshot(folder)
    assert install_ragflow(folder, "--ragflow-source", str(image_root)) == 0
    out = capsys.readouterr().out
    assert f"-f {deployment.COMPOSE_OVERRIDE} up -d" in out and "image rebuild" in out
    override = yaml.safe_load((folder / deployment.COMPOSE_OVERRIDE).read_text(encoding="utf-8"))
    assert set(override["services"]) == {"ragflow-cpu", "ragflow-gpu"}  # not mysql
    for spec in override["services"].values():  # models added without a base URL reach the host's server
        assert spec["environment"] == {BASE_URL_ENV: "http://host.docker.internal:8086"}
    installed = snapshot(folder)
    assert install_ragflow(folder, "--ragflow-source", str(image_root)) == 0
    assert snapshot(folder) == installed
    container = container_view(folder, image_root, tmp_path / "container")
    assert_scored(score_in_ragflow(container, live_server), container)
    assert install_ragflow(folder, "--uninstall") == 0
    assert snapshot(folder) == pristine


def test_the_shell_script_runs_the_installer(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "ragflow")
    pristine = snapshot(root)
    script = REPO_ROOT / "scripts" / "install_ragflow.sh"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(script), str(root)], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "patched rag/llm/rerank_model.py" in done.stdout and snapshot(root) != pristine
    undone = subprocess.run(["bash", str(script), str(root), "--uninstall"], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert undone.returncode == 0, undone.stderr
    assert snapshot(root) == pristine


def test_models_from_a_running_server_become_ragflow_models(tmp_path: Path, multi_model_server: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """`--models-from URL`: every name the server serves is a model of the factory, each scoring through
    the patched tree with the server routing by name."""
    root = make_tree(tmp_path / "ragflow")
    assert install_ragflow(root, "--models-from", f"{multi_model_server}/v1") == 0
    assert f"'minilm@{FACTORY_NAME}' in the API" in capsys.readouterr().out
    (entry,) = [info for info in json.loads((root / deployment.LLM_FACTORIES).read_text(encoding="utf-8"))[
        "factory_llm_infos"] if info["name"] == FACTORY_NAME]
    names = [llm["llm_name"] for llm in entry["llm"]]
    assert names[:5] == ["minilm", "gemma", "qwen3", "minicpm", "gemma2-lite"] and "BAAI/bge-reranker-v2-m3" in names
    assert entry["llm"][2]["max_tokens"] == 128 and entry["llm"][2]["tags"] == "RE-RANK,128"
    assert install_ragflow(root, "--models-from", "http://127.0.0.1:9") == 1  # nothing listens there
    assert "cannot read the served models" in capsys.readouterr().err
