"""load_backend, in process: the ONNX path builds a torch model only to export (never moved to a device),
none at all once the export is cached, and scores as the torch path does; a missing model is one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from local_server.backends import LoadedModel, ModelLoadError, load_backend
from local_server.engine import RerankEngine
from local_server.settings import Settings

QUERY = "which city is the capital of france"
DOCS = ["paris is the capital city of france", "dog", "the weather in paris is sunny and the cat sat on the mat"]


def spy_models(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every transformers model built and every module moved or halved."""
    seen: list[str] = []
    build, move, half = transformers.PreTrainedModel.__init__, torch.nn.Module.to, torch.nn.Module.half

    def spying(name: str, method):
        def wrapper(self, *args, **kwargs):
            seen.append(f"{name} {type(self).__name__}")
            return method(self, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(transformers.PreTrainedModel, "__init__", spying("built", build))
    monkeypatch.setattr(torch.nn.Module, "to", spying("moved", move))
    monkeypatch.setattr(torch.nn.Module, "half", spying("halved", half))
    return seen


def logits(loaded: LoadedModel, settings: Settings) -> np.ndarray:
    engine = RerankEngine(loaded, settings)
    return engine.logits(engine.encode(QUERY, DOCS))


def test_the_onnx_backend_never_builds_a_torch_model_in_the_server(tiny_model_dir: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The export's torch model is built in the export's own process; serving reads only the export."""
    settings = Settings(model=str(tiny_model_dir), offline=True, backend="onnx", cache_dir=tmp_path)
    with monkeypatch.context() as patch:
        seen = spy_models(patch)
        exported = load_backend(settings)
    assert seen == [] and list((tmp_path / "onnx").glob("*/model.onnx"))  # exported, elsewhere

    seen = spy_models(monkeypatch)
    cached = load_backend(settings)
    assert seen == []  # the tokenizer, the config and the cached export are all it reads
    assert (cached.device, cached.dtype) == ("cpu", "float32")

    reference = load_backend(Settings(model=str(tiny_model_dir), offline=True, backend="torch"))
    expected = logits(reference, settings)
    assert np.abs(logits(cached, settings) - expected).max() < 1e-4
    assert np.abs(logits(exported, settings) - expected).max() < 1e-4


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_a_missing_model_is_one_clear_line(backend: str, tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(ModelLoadError) as error:
        load_backend(Settings(model=missing, offline=True, backend=backend, cache_dir=tmp_path))
    message = str(error.value)
    assert "\n" not in message and missing in message and "RERANK_MODEL" in message and "local folder" in message
