"""`rerank-kit install-ragflow` on scratch copies of the RAGFlow stand-in (source tree and Docker folder), in process.
Scoring through a patched tree and the shell script: tests/e2e/ragflow/test_installer.py."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import yaml

from ragflow_integration import backup, deployment, edits
from ragflow_integration.rerank_model import BASE_URL_ENV, FACTORY_NAME
from tests.support.ragflow_standin.harness import TREE, VERSIONS, docker_folder, install_ragflow, make_tree, snapshot


@pytest.mark.parametrize("version", VERSIONS)
def test_install_twice_then_uninstall_restores_every_byte(tmp_path: Path, version: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    root = make_tree(tmp_path / "ragflow", version)
    pristine = snapshot(root)
    assert install_ragflow(root) == 0
    installed = snapshot(root)
    assert installed != pristine
    assert install_ragflow(root) == 0
    assert snapshot(root) == installed
    assert "Already installed" in capsys.readouterr().out
    assert install_ragflow(root, "--uninstall") == 0
    assert snapshot(root) == pristine
    assert not (root / backup.BACKUP_DIR).exists() and not (root / "rerank_kit").exists()


def test_dry_run_shows_the_diff_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_tree(tmp_path / "ragflow")
    pristine = snapshot(root)
    assert install_ragflow(root, "--dry-run") == 0
    out = capsys.readouterr().out
    assert snapshot(root) == pristine
    assert "+++ b/rag/llm/rerank_model.py" in out and "+RerankKitRerank = _build_rerank_kit_class(Base)" in out
    assert f'+            "name": "{FACTORY_NAME}",' in out
    assert "+++ b/rag/llm/rerank_kit_model.py" in out and "+++ b/rerank_kit/client/__init__.py" in out
    assert "nothing written" in out


def test_uninstall_dry_run_lists_and_keeps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_tree(tmp_path / "ragflow")
    assert install_ragflow(root) == 0
    installed = snapshot(root)
    assert install_ragflow(root, "--uninstall", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "restore rag/llm/rerank_model.py" in out and "remove rerank_kit/client/__init__.py" in out
    assert snapshot(root) == installed


def test_factory_entry_is_merged_in_ragflows_schema(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "ragflow")
    original = json.loads((TREE / deployment.LLM_FACTORIES).read_text(encoding="utf-8"))["factory_llm_infos"]
    assert install_ragflow(root) == 0
    text = (root / deployment.LLM_FACTORIES).read_text(encoding="utf-8")
    infos = json.loads(text)["factory_llm_infos"]
    assert infos[:-1] == original and "文心" in text  # others untouched, non-ASCII kept as is
    entry = infos[-1]
    assert entry["name"] == FACTORY_NAME == edits.factory_entry()["name"]
    assert set(entry) == {"name", "logo", "tags", "status", "llm"} and "RE-RANK" in entry["tags"]
    assert entry["status"] == "1" and entry["llm"]
    for llm in entry["llm"]:
        assert set(llm) == {"llm_name", "tags", "max_tokens", "model_type"}
        assert llm["model_type"] == "rerank" and isinstance(llm["max_tokens"], int) and "RE-RANK" in llm["tags"]


def test_a_stale_entry_is_replaced_in_place(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "ragflow")
    path = root / deployment.LLM_FACTORIES
    document = json.loads(path.read_text(encoding="utf-8"))
    document["factory_llm_infos"].insert(1, {**edits.factory_entry(), "status": "0", "llm": []})
    path.write_text(json.dumps(document, indent=4, ensure_ascii=False), encoding="utf-8")
    assert install_ragflow(root) == 0
    infos = json.loads(path.read_text(encoding="utf-8"))["factory_llm_infos"]
    assert [info["name"] for info in infos].count(FACTORY_NAME) == 1
    assert infos[1] == edits.factory_entry()


def test_web_constants_are_added_once(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "ragflow")
    assert install_ragflow(root) == 0 and install_ragflow(root) == 0
    llm_ts = (root / deployment.WEB_LLM_CONSTANTS).read_text(encoding="utf-8")
    setting = (root / deployment.WEB_SETTING_CONSTANTS).read_text(encoding="utf-8")
    assert llm_ts.count(f"RerankKit = '{FACTORY_NAME}',") == 1 and llm_ts.count("[LLMFactory.RerankKit]:") == 1
    assert setting.count("LLMFactory.RerankKit,") == 1


def test_without_web_sources_it_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_tree(tmp_path / "ragflow")
    shutil.rmtree(root / "web")
    assert install_ragflow(root) == 0
    out = capsys.readouterr().out
    assert "web rebuild" in out and "HuggingFace (TEI)" in out and "OpenAI-API-Compatible" in out


def test_server_url_option_sets_the_containers_default(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "ragflow")
    assert install_ragflow(root, "--server-url", "http://rerank:8086") == 0
    override = yaml.safe_load((root / "docker" / deployment.COMPOSE_OVERRIDE).read_text(encoding="utf-8"))
    assert {spec["environment"][BASE_URL_ENV] for spec in override["services"].values()} == {"http://rerank:8086"}
    assert {len(spec["volumes"]) for spec in override["services"].values()} == {4}


def test_docker_folder_reads_the_image_named_in_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --ragflow-source the originals come from `docker run --rm --entrypoint cat $RAGFLOW_IMAGE`."""
    folder = docker_folder(tmp_path)
    image_root = make_tree(tmp_path / "image")
    calls = tmp_path / "docker-calls.txt"
    fake_docker = tmp_path / "bin" / "docker"
    fake_docker.parent.mkdir()
    fake_docker.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n'
                           f'eval last=\\${{$#}}\ncat "{image_root}${{last#/ragflow}}"\n', encoding="utf-8")
    fake_docker.chmod(fake_docker.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake_docker.parent}{os.pathsep}{os.environ['PATH']}")
    assert install_ragflow(folder) == 0
    assert calls.read_text().splitlines() == [
        f"run --rm --entrypoint cat infiniflow/ragflow:v0.22.1 /ragflow/{rel}"
        for rel in (deployment.LLM_FACTORIES, deployment.RERANK_MODEL)
    ]
    staged = folder / deployment.STAGING_DIR / deployment.RERANK_MODEL
    assert staged.read_text(encoding="utf-8").startswith((image_root / deployment.RERANK_MODEL).read_text())


def test_a_folder_that_is_not_ragflow_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert install_ragflow(tmp_path) == 1
    assert "neither a RAGFlow source tree" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_uninstall_of_a_clean_tree_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_tree(tmp_path / "ragflow")
    pristine = snapshot(root)
    assert install_ragflow(root, "--uninstall") == 0
    assert "Nothing to uninstall" in capsys.readouterr().out and snapshot(root) == pristine
