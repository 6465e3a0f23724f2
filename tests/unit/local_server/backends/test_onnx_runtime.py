"""The ONNX Runtime backend (local_server/backends/onnx_runtime): fp32 scores equal torch's to 1e-3 (through the
served API: tests/e2e/server/test_onnx.py), int8 really is quantised (7-bit weights where this CPU's int8
kernel saturates), and the export is cached and reused. Whether int8 is served: onnx_runtime/test_int8.py."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from local_server.backends.onnx_runtime import int8, load_onnx_backend
from rerank_kit.scores import sigmoids

QUERY = "which city is the capital of france"
DOCS = [
    "paris is the capital city of france",
    "rain and cloud over the river today",
    "dog",
    "the weather in paris is sunny and the cat sat on the mat by the river in the city",
    "a python server scores each query and document pair in a batch",
    "france",
    "what is the weather today",
]



@pytest.fixture(scope="module")
def padded_batch(tiny_model_dir: Path) -> dict[str, np.ndarray]:
    """Pairs of different lengths padded to the longest, as the engine sends them."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return dict(tokenizer([QUERY] * len(DOCS), DOCS, padding=True, return_tensors="np"))


@pytest.fixture(scope="module")
def torch_logits(tiny_model_dir: Path, padded_batch: dict[str, np.ndarray]) -> np.ndarray:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir).eval()
    with torch.inference_mode():
        return model(**{k: torch.from_numpy(v) for k, v in padded_batch.items()}).logits.view(-1).numpy()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


def test_fp32_logits_match_torch(tiny_model_dir, padded_batch, torch_logits, cache_dir) -> None:
    backend = load_onnx_backend(str(tiny_model_dir), quantize="none", threads=1, cache_dir=cache_dir)
    got = backend.logits(padded_batch)
    assert got.dtype == np.float32 and got.shape == (len(DOCS),)
    assert np.abs(got - torch_logits).max() < 1e-3
    assert np.abs(np.array(sigmoids(got)) - np.array(sigmoids(torch_logits))).max() < 1e-3
    assert set(backend.input_names) == {"input_ids", "attention_mask", "token_type_ids"}


def test_export_is_cached_and_keyed_by_quantisation(tiny_model_dir, padded_batch, cache_dir) -> None:
    first = load_onnx_backend(str(tiny_model_dir), quantize="none", threads=1, cache_dir=cache_dir)
    exported_at = first.model_path.stat().st_mtime_ns
    again = load_onnx_backend(str(tiny_model_dir), quantize="none", threads=1, cache_dir=cache_dir)
    assert again.model_path == first.model_path
    assert again.model_path.stat().st_mtime_ns == exported_at  # reused, not exported again
    quantised = load_onnx_backend(str(tiny_model_dir), quantize="int8", threads=1, cache_dir=cache_dir)
    assert quantised.model_path != first.model_path
    assert sorted(p.name for p in (cache_dir / "onnx").iterdir() if p.is_dir()) == sorted(
        [first.model_path.parent.name, quantised.model_path.parent.name])  # no scratch folders left behind


def test_int8_quantises_the_cached_fp32_export_without_tracing_again(tiny_model_dir, padded_batch, tmp_path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """The same int8 graph as an int8 export from scratch, without a second trace, fuse and check."""
    fresh = load_onnx_backend(str(tiny_model_dir), quantize="int8", threads=1, cache_dir=tmp_path / "fresh")
    reused = tmp_path / "reused"
    load_onnx_backend(str(tiny_model_dir), quantize="none", threads=1, cache_dir=reused)
    with caplog.at_level(logging.INFO, logger="local_server"):
        quantised = load_onnx_backend(str(tiny_model_dir), quantize="int8", threads=1, cache_dir=reused)
    messages = [r.getMessage() for r in caplog.records]
    assert any("quantisation of the cached fp32 export" in m for m in messages)
    assert not any("tracing" in m for m in messages)
    assert np.array_equal(quantised.logits(padded_batch), fresh.logits(padded_batch))


def test_int8_is_quantised_with_the_settings_that_suit_this_cpu(tiny_model_dir, padded_batch, cache_dir) -> None:
    """Full-range int8 weights where this CPU multiplies int8 exactly; 7-bit ones (reduce_range) where its
    kernel saturates (x86-64 without VNNI), so the products cannot overflow 16 bits there."""
    backend = load_onnx_backend(str(tiny_model_dir), quantize="int8", threads=1, cache_dir=cache_dir)
    variant = int8.variant_for_this_cpu()
    assert f"-{variant}-" in backend.model_path.parent.name
    graph = onnx.load(str(backend.model_path)).graph
    assert any(node.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for node in graph.node)
    int8_weights = [onnx.numpy_helper.to_array(t) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert int8_weights, "no int8 weights in the quantised graph"
    largest = max(int(np.abs(w.astype(np.int32)).max()) for w in int8_weights)
    assert largest <= 64 if variant == int8.REDUCED_RANGE else largest == 127
    assert np.isfinite(backend.logits(padded_batch)).all()


def test_unknown_quantisation_is_refused(tiny_model_dir, cache_dir) -> None:
    with pytest.raises(ValueError, match="int8"):
        load_onnx_backend(str(tiny_model_dir), quantize="fp8", threads=1, cache_dir=cache_dir)
