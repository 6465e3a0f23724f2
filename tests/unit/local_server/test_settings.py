"""The config file (RERANK_CONFIG): its errors name the problem; the documented and shipped model lists parse."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_server.settings import ConfigFileError, ModelSpec, Settings, read_config
from tests.support import REPO_ROOT
from tests.support.server_process import write_models_config


def test_config_file_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=r"models\.0\.path"):
        read_config(write_models_config(tmp_path / "a.yaml", [{"name": "x"}]))
    with pytest.raises(ConfigFileError, match="repeated: x"):
        read_config(write_models_config(tmp_path / "b.yaml", [{"name": "x", "path": "p"}, {"name": "x", "path": "q"}]))
    with pytest.raises(ConfigFileError, match=r"models\.0\.colour"):
        read_config(write_models_config(tmp_path / "c.yaml", [{"name": "x", "path": "p", "colour": "red"}]))
    with pytest.raises(ConfigFileError, match="cannot read"):
        read_config(tmp_path / "missing.yaml")


def test_the_documented_and_shipped_model_lists_are_valid_config_files(tmp_path: Path) -> None:
    """docs/server.md's example and the Helm chart's example values (their `models:` list) parse as RERANK_CONFIG."""
    section = (REPO_ROOT / "docs" / "server.md").read_text().split("## Several models on one server", 1)[1]
    example = tmp_path / "models.yaml"
    example.write_text(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    assert [spec.name for spec in read_config(example)] == ["minilm", "bge-m3", "qwen3-reranker", "jina-v2",
                                                          "minicpm-layerwise", "gemma2-lightweight"]
    helm = read_config(REPO_ROOT / "deploy" / "helm" / "examples" / "models.yaml")
    assert [(spec.name, spec.lazy_load) for spec in helm] == [("bge-reranker-v2-m3", None), ("qwen3-reranker", True)]


def test_the_setting_once_called_kind_is_still_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """RERANK_KIND and a config file's `kind:` (the setting's name before it was `family`) keep working."""
    assert ModelSpec(name="m", path="p", kind="qwen3").family == "qwen3"
    assert Settings(kind="llm").family == "llm"
    monkeypatch.setenv("RERANK_KIND", "qwen3")
    assert Settings().family == "qwen3"
    monkeypatch.setenv("RERANK_FAMILY", "llm")
    assert Settings().family == "llm"  # the new name wins
