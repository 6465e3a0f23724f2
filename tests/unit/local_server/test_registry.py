"""ServedModels (local_server/registry.py): a request's model name to one served model, lazy loading and idle
unloading."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from local_server.engine import RerankEngine
from local_server.registry import ModelNotFoundError, ServedModels
from local_server.settings import Settings
from tests.support.families import QUERY
from tests.support.server_process import write_models_config


def test_lazy_load_and_idle_unload(tiny_model_dir: Path, tiny_qwen3_dir: Path, tmp_path: Path) -> None:
    config = write_models_config(tmp_path / "models.yaml", [
        {"name": "fast", "path": str(tiny_model_dir), "backend": "torch"},
        {"name": "qwen", "path": str(tiny_qwen3_dir), "lazy_load": True, "idle_unload_s": 60, "max_length": 160},
    ])
    models = ServedModels.load(Settings(config=config, offline=True))
    fast, qwen = models.get("fast"), models.get("qwen")
    assert fast.engine and qwen.engine is None and qwen.family == "qwen3"  # detected without loading
    assert models.get(None) is fast and models.get("qwen___VLLM") is qwen and models.get(str(tiny_qwen3_dir)) is qwen
    with pytest.raises(ModelNotFoundError, match="served models: fast, qwen"):
        models.get("nope")

    async def use() -> RerankEngine:
        async with models.in_use(qwen) as (engine, lane):
            assert qwen.active == 1 and lane is qwen.lane
            assert models.unload_idle(now=qwen.last_used + 10**6) == []  # in use: never unloaded
        assert qwen.active == 0
        return engine

    engine = asyncio.run(use())
    assert qwen.engine is engine and engine.max_length == 160 and engine.family.name == "qwen3"
    assert models.unload_idle(now=qwen.last_used + 30) == []  # not idle long enough
    qwen.active = 1
    assert models.unload_idle(now=qwen.last_used + 120) == []  # a request in progress
    qwen.active = 0
    assert models.unload_idle(now=qwen.last_used + 120) == ["qwen"]
    assert qwen.engine is None and fast.engine is not None  # the other model has no idle_unload_s
    again = asyncio.run(use())
    assert again is not engine and qwen.lane is not None and qwen.lane.run_batch == again.logits
    assert math.isfinite(float(again.logits(again.encode(QUERY, ["paris"]))[0]))


def test_a_single_model_server_answers_any_model_name(tiny_model_dir: Path) -> None:
    """The RERANK_MODEL form routes every name to its one model, as before (clients send their own names)."""
    models = ServedModels.load(Settings(model=str(tiny_model_dir), offline=True, backend="torch"))
    assert models.get("rerank-kit") is models.default and models.names == [tiny_model_dir.name]
