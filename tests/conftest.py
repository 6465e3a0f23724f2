"""Session fixtures: tiny rerankers of every family built on disk, a live rerank-kit server serving the
cross-encoder, and one serving them all from a config file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server_process import TEST_API_KEY, running_server, write_models_config
from tests.support.tiny_model import LIGHTWEIGHT_OPTIONS, MAX_LENGTH, QWEN3_MAX_LENGTH


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The default backend exports to ONNX on first load: every server and Settings() of the session shares
    one export cache in a temporary folder, never the user's ~/.cache."""
    path = tmp_path_factory.mktemp("rerank-kit-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RERANK_CACHE_DIR", str(path))
        yield path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.tiny_model import build_tiny_cross_encoder

    return build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-cross-encoder"))


@pytest.fixture(scope="session")
def tiny_llm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GemmaForCausalLM for the `llm` family (FlagLLMReranker's models)."""
    from tests.support.tiny_model import build_tiny_llm_reranker

    return build_tiny_llm_reranker(tmp_path_factory.mktemp("tiny-llm-reranker"))


@pytest.fixture(scope="session")
def tiny_qwen3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen3ForCausalLM for the `qwen3` family (Qwen3-Reranker)."""
    from tests.support.tiny_model import build_tiny_qwen3_reranker

    return build_tiny_qwen3_reranker(tmp_path_factory.mktemp("tiny-qwen3-reranker"))


@pytest.fixture(scope="session")
def tiny_layerwise_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LayerWiseMiniCPMForCausalLM (bge-reranker-v2-minicpm-layerwise), saved by FlagEmbedding's class."""
    from tests.support.flag_reference import build_tiny

    return build_tiny("llm-layerwise", tmp_path_factory.mktemp("tiny-layerwise-reranker"))


@pytest.fixture(scope="session")
def tiny_lightweight_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CostWiseGemmaForCausalLM (bge-reranker-v2.5-gemma2-lightweight), saved by FlagEmbedding's class."""
    from tests.support.flag_reference import build_tiny

    return build_tiny("llm-lightweight", tmp_path_factory.mktemp("tiny-lightweight-reranker"))


@pytest.fixture(scope="session")
def onnx_fp32_cache(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """An export cache holding the tiny model's good fp32 entry (copy it before damaging it)."""
    from local_server.backends.onnx_runtime import load_onnx_backend

    cache = tmp_path_factory.mktemp("pristine-cache")
    load_onnx_backend(str(tiny_model_dir), quantize="none", threads=1, cache_dir=cache)
    return cache


@pytest.fixture(scope="session")
def onnx_int8_cache(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """An export cache with the tiny model's fp32 export and its int8 export for this CPU."""
    from local_server.backends.onnx_runtime import load_onnx_backend

    folder = tmp_path_factory.mktemp("int8-cache")
    load_onnx_backend(str(tiny_model_dir), quantize="int8", threads=1, cache_dir=folder)
    return folder


@pytest.fixture(scope="session")
def offline_package(tmp_path_factory: pytest.TempPathFactory):
    """The model plugin's offline .difypkg (`package-dify --offline`: its wheels inside, from the wheel cache)."""
    from rerank_kit.commands import difypkg
    from rerank_kit.commands.wheels import Offline

    return difypkg.build(tmp_path_factory.mktemp("dist"), offline=Offline())


@pytest.fixture(scope="session")
def live_server(tiny_model_dir: Path) -> Iterator[str]:
    """Base URL of a real `rerank-kit serve` process on loopback, serving the tiny model."""
    with running_server(tiny_model_dir) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def multi_model_server(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, tiny_llm_dir: Path,
                       tiny_qwen3_dir: Path, tiny_layerwise_dir: Path, tiny_lightweight_dir: Path) -> Iterator[str]:
    """Base URL of one `rerank-kit serve --config` process serving every family: a cross-encoder ("minilm", the
    default), an `llm` model ("gemma"), a `qwen3` model ("qwen3"), an `llm-layerwise` model cut off at layer 3
    ("minicpm") and an `llm-lightweight` model compressing its passages ("gemma2-lite")."""
    config = write_models_config(tmp_path_factory.mktemp("config") / "models.yaml", [
        {"name": "minilm", "path": str(tiny_model_dir), "backend": "torch", "max_length": MAX_LENGTH},
        {"name": "gemma", "path": str(tiny_llm_dir), "max_length": MAX_LENGTH},
        {"name": "qwen3", "path": str(tiny_qwen3_dir), "max_length": QWEN3_MAX_LENGTH},
        {"name": "minicpm", "path": str(tiny_layerwise_dir), "max_length": MAX_LENGTH, "cutoff_layers": [3]},
        {"name": "gemma2-lite", "path": str(tiny_lightweight_dir), "max_length": MAX_LENGTH, **LIGHTWEIGHT_OPTIONS},
    ])
    with running_server(tiny_model_dir, config=str(config)) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def keyed_server(tiny_model_dir: Path) -> Iterator[str]:
    """Base URL of a live server that requires `Authorization: Bearer TEST_API_KEY` (the plugins' key tests)."""
    with running_server(tiny_model_dir, api_key=TEST_API_KEY) as base_url:
        yield base_url
