"""load_backend (local_server/backends): the default backend (`auto`): a cross-encoder on the CPU is served
through ONNX Runtime fp32 when its export gives torch's logits; an export that fails or disagrees falls back to
torch with one log line, and that verdict is cached; `torch` and `onnx` force a backend. In process, the ONNX
path builds a torch model only to export (never moved to a device), none at all once the export is cached, and
scores as the torch path does; a missing model is one line."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import transformers

from local_server import memory
from local_server.backends import LoadedModel, ModelLoadError, load_backend, onnx_runtime
from local_server.backends.onnx_runtime import child, export
from local_server.engine import RerankEngine
from local_server.settings import Settings

QUERY = "which city is the capital of france"
DOCS = ["paris is the capital city of france", "dog", "the weather in paris is sunny and the cat sat on the mat"]


def scores(settings: Settings) -> tuple[str, np.ndarray]:
    engine = RerankEngine(load_backend(settings), settings)
    return engine.backend.name, engine.logits(engine.encode(QUERY, DOCS))


def ours(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    """The server's own log lines at `level` or above (onnxruntime's optimiser logs its own)."""
    return [r.getMessage() for r in caplog.records if r.name.startswith("local_server") and r.levelno >= level]


def settings_for(model: Path, cache: Path, **overrides: object) -> Settings:
    return Settings(model=str(model), offline=True, cache_dir=cache, **overrides)


def export_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the export in this process, where the test's patched steps are (the server exports in a child)."""
    monkeypatch.setattr(onnx_runtime, "build_in_child",
                        lambda model, variant, key, cache, threads: child._build(model, variant, key, cache))


def rejections(cache: Path) -> list[str]:
    """The cached verdicts (rejected exports) under `cache`."""
    manifests = [json.loads(path.read_text()) for path in (cache / "onnx").glob("*/manifest.json")]
    return [manifest["rejected"] for manifest in manifests if manifest["rejected"]]


@pytest.fixture()
def torch_scores(tiny_model_dir: Path, tmp_path: Path) -> np.ndarray:
    name, logits = scores(settings_for(tiny_model_dir, tmp_path / "unused", backend="torch"))
    assert name == "torch" and not (tmp_path / "unused").exists()  # forced torch never exports
    return logits


def test_auto_serves_the_verified_onnx_export_and_reuses_it(tiny_model_dir: Path, tmp_path: Path,
                                                            torch_scores: np.ndarray,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(tiny_model_dir, tmp_path)
    assert settings.backend == "auto"
    with caplog.at_level(logging.INFO, logger="local_server"):
        name, logits = scores(settings)
    assert name == "onnx" and np.abs(logits - torch_scores).max() < export.VERIFY_TOLERANCE
    steps = [r.getMessage() for r in caplog.records if "ONNX export" in r.getMessage()]
    assert any("1/2" in m for m in steps) and any("2/2" in m for m in steps)  # the progress lines
    assert any("matches torch" in m for m in steps)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="local_server"):
        assert scores(settings)[0] == "onnx"
    assert any("using cached ONNX model" in r.getMessage() for r in caplog.records)
    assert not any("ONNX export 1/" in r.getMessage() for r in caplog.records)  # a cache hit exports nothing


def test_a_disagreeing_export_falls_back_to_torch_once_and_for_all(
        tiny_model_dir: Path, tmp_path: Path, torch_scores: np.ndarray, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    fuse = export._fuse
    fused: list[Path] = []

    def broken_fuse(source: Path, target: Path, **facts: object) -> None:
        """The real optimiser, then the classifier's bias shifted: a fusion bug as the check would meet it."""
        fuse(source, target, **facts)
        graph = onnx.load(str(target))
        bias = next(t for t in graph.graph.initializer if "classifier" in t.name and "bias" in t.name)
        shifted = onnx.numpy_helper.to_array(bias) + np.float32(0.01)
        bias.CopyFrom(onnx.numpy_helper.from_array(shifted, bias.name))
        onnx.save(graph, str(target))
        fused.append(target)

    monkeypatch.setattr(export, "_fuse", broken_fuse)
    export_here(monkeypatch)
    settings = settings_for(tiny_model_dir, tmp_path)
    with caplog.at_level(logging.WARNING, logger="local_server"):
        name, logits = scores(settings)
    assert name == "torch" and np.abs(logits - torch_scores).max() < 1e-6
    warnings = ours(caplog, logging.WARNING)
    assert len(warnings) == 1 and "serving" in warnings[0] and "away from torch" in warnings[0], warnings
    assert len(fused) == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="local_server"):
        assert scores(settings)[0] == "torch"
    assert len(fused) == 1  # the cached verdict: no second export
    assert "cached verdict" in ours(caplog, logging.WARNING)[-1]
    with pytest.raises(ModelLoadError, match=r"RERANK_BACKEND=onnx: .*away from torch"):
        load_backend(settings_for(tiny_model_dir, tmp_path, backend="onnx"))  # asked for ONNX: no silent torch


def test_a_failed_export_falls_back_to_torch(tiny_model_dir: Path, tmp_path: Path, torch_scores: np.ndarray,
                                             monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    def unsupported(model: str, path: Path) -> None:
        raise RuntimeError("Exporting the operator 'aten::fancy_attention' to ONNX opset 17 is not supported")

    monkeypatch.setattr(export, "_export", unsupported)
    export_here(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="local_server"):
        name, logits = scores(settings_for(tiny_model_dir, tmp_path))
    assert name == "torch" and np.abs(logits - torch_scores).max() < 1e-6
    (warning,) = ours(caplog, logging.WARNING)
    assert "export of" in warning and "failed (RuntimeError: Exporting the operator" in warning


def test_an_export_process_that_dies_leaves_the_server_on_torch(tiny_model_dir: Path, tmp_path: Path,
                                                               torch_scores: np.ndarray,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """The export runs in a child process: killed (here by SIGKILL), the server serves torch, says so, and
    caches that verdict like any failed export."""
    killed = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
    monkeypatch.setattr(child, "export_command", lambda: killed)
    with caplog.at_level(logging.WARNING, logger="local_server"):
        name, logits = scores(settings_for(tiny_model_dir, tmp_path))
    assert name == "torch" and np.abs(logits - torch_scores).max() < 1e-6
    (warning,) = ours(caplog, logging.WARNING)
    assert "ended without an answer (exit code -9, killed: out of memory?)" in warning
    assert len(rejections(tmp_path)) == 1


@pytest.mark.parametrize(("program", "says"), [
    ("print('noise before the protocol'); print('{\"outcome\": \"failed\", \"message\": \"disk full\"}')",
     "disk full"),
    ("raise SystemExit(3)", "ended without an answer (exit code 3)"),
])
def test_an_export_that_fails_for_another_reason_is_not_cached(program: str, says: str, tiny_model_dir: Path,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """Not a verdict on the model (a full disk, a broken install): torch serves, and the next start exports."""
    monkeypatch.setattr(child, "export_command", lambda: [sys.executable, "-c", program])
    with caplog.at_level(logging.WARNING, logger="local_server"):
        assert scores(settings_for(tiny_model_dir, tmp_path))[0] == "torch"
    assert says in ours(caplog, logging.WARNING)[0]
    assert not rejections(tmp_path)


def test_the_export_runs_in_its_own_process_and_its_progress_reaches_the_servers_log(
        tiny_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="local_server"):
        assert scores(settings_for(tiny_model_dir, tmp_path))[0] == "onnx"
    steps = [r for r in caplog.records if r.getMessage().startswith("ONNX export")]
    assert len(steps) >= 3 and {r.processName for r in steps} == {"onnx-export"}


def test_an_export_the_memory_cannot_hold_is_not_tried(tiny_model_dir: Path, tmp_path: Path,
                                                       torch_scores: np.ndarray, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """A pod whose memory limit the export would cross is killed, restarts and exports again, forever: `auto`
    serves torch instead, with the numbers, and caches nothing (with more memory the next start exports);
    `onnx` tries anyway."""
    monkeypatch.setattr(memory, "available_bytes", lambda: 2**20)
    with caplog.at_level(logging.WARNING, logger="local_server"):
        name, logits = scores(settings_for(tiny_model_dir, tmp_path))
    assert name == "torch" and np.abs(logits - torch_scores).max() < 1e-6
    (warning,) = ours(caplog, logging.WARNING)
    assert "needs about 0.5 GiB of memory and 0.0 GiB are available (RERANK_BACKEND=onnx tries anyway" in warning
    assert not [path for path in (tmp_path / "onnx").iterdir() if path.is_dir()]  # no export, no cached verdict
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="local_server"):
        assert scores(settings_for(tiny_model_dir, tmp_path, backend="onnx"))[0] == "onnx"
    assert any("exporting anyway (RERANK_BACKEND=onnx)" in m for m in ours(caplog, logging.WARNING))


def test_the_export_needs_eight_times_the_fp32_weights(tiny_model_dir: Path) -> None:
    from safetensors.torch import load_file

    parameters = sum(t.numel() for t in load_file(tiny_model_dir / "model.safetensors").values())
    assert export.export_memory_bytes(tiny_model_dir) == 8 * 4 * parameters + 2**29


def test_a_snapshot_without_its_weights_yet_is_estimated_from_its_config(tiny_model_dir: Path,
                                                                         tmp_path: Path) -> None:
    """A hub model's snapshot holds only the config and tokenizer until the export fetches the weights: the
    memory check estimates them from config.json's shape instead of seeing none (and passing)."""
    (tmp_path / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    estimated, counted = export._fp32_weight_bytes(tmp_path), export._fp32_weight_bytes(tiny_model_dir)
    assert 0.75 * counted < estimated < 1.25 * counted


# -- in process: which models are built ----------------------------------------------------------------

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
