"""Fixtures for the plugin's unit tests: run in the Python 3.12 venv with the dify-plugin SDK (no torch).

The plugin is loaded the way the daemon loads it: its root is assembled by `rerank_kit.commands.difypkg` and
`PluginRegistration` reads manifest.yaml, the provider YAML and the sources from that root as cwd.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

if importlib.util.find_spec("dify_plugin.core") is None:
    raise RuntimeError("tests/dify_sdk needs the dify-plugin SDK: run them with .venv-dify/bin/python "
                       "(`make test` does), not in the server venv")

from dify_plugin import DifyPluginEnv
from dify_plugin.core.plugin_registration import PluginRegistration
from dify_plugin.entities.model import ModelType

from rerank_kit.commands import difypkg

PROVIDER = "local_reranker"


@pytest.fixture(scope="session")
def registration(tmp_path_factory: pytest.TempPathFactory) -> PluginRegistration:
    root = tmp_path_factory.mktemp("plugin-root")
    for rel, data in difypkg.plugin_root_files().items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    previous_cwd = Path.cwd()
    os.chdir(root)
    sys.path.insert(0, str(root))
    try:
        return PluginRegistration(DifyPluginEnv())
    finally:
        sys.path.remove(str(root))
        os.chdir(previous_cwd)


@pytest.fixture
def rerank_model(registration: PluginRegistration):
    return registration.get_model_instance(PROVIDER, ModelType.RERANK)


@pytest.fixture
def provider(registration: PluginRegistration):
    return registration.get_model_provider_instance(PROVIDER)

