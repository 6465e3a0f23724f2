"""int8 is served only where it holds: checked against fp32 on the serving CPU, quantised to suit that CPU,
refused (fp32 served, the reason logged, and in /info: tests/e2e/server/test_onnx.py) outside the tolerance.
Holds on any x86-64 CPU: the check runs natively here and, under QEMU, on an emulated AVX2 CPU without VNNI
(Haswell), where full-range int8 saturates."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from local_server.backends import onnx_runtime
from local_server.backends.onnx_runtime import OnnxBackend, check_int8, int8, load_onnx_backend
from local_server.settings import Settings
from rerank_kit.scores import sigmoids
from tests.support.tiny_model import (
    SAMPLE_DOCS as DOCS,  # the check pairs are int8.CHECK_SETS: text the check did not see
)
from tests.support.tiny_model import SAMPLE_QUERY as QUERY
from tests.support.tools import required


def int8_settings(model: Path, cache: Path, **overrides: object) -> Settings:
    return Settings(model=str(model), offline=True, cache_dir=cache, onnx_quantize="int8", threads=1, **overrides)


def docs_logits(backend: OnnxBackend, tokenizer) -> np.ndarray:
    return backend.logits(dict(tokenizer([QUERY] * len(DOCS), DOCS, padding=True, return_tensors="np")))


def test_int8_is_served_only_within_its_tolerance_on_this_cpu(tiny_model_dir: Path, onnx_int8_cache: Path) -> None:
    settings = int8_settings(tiny_model_dir, onnx_int8_cache)
    loaded = onnx_runtime.load(settings)
    fp32 = load_onnx_backend(settings.model, quantize="none", threads=1, cache_dir=onnx_int8_cache)
    quantised = load_onnx_backend(settings.model, quantize="int8", threads=1, cache_dir=onnx_int8_cache)
    check = check_int8(fp32, quantised, loaded.tokenizer, settings)
    if check.passed:
        assert (loaded.dtype, loaded.backend.model_path, loaded.note) == ("int8", quantised.model_path, None)
        served, reference = docs_logits(loaded.backend, loaded.tokenizer), docs_logits(fp32, loaded.tokenizer)
        assert np.abs(np.array(sigmoids(served)) - np.array(sigmoids(reference))).max() <= settings.int8_max_score_diff
    else:
        assert (loaded.dtype, loaded.backend.model_path) == ("float32", fp32.model_path)
        assert loaded.note == f"serving fp32, not int8: {check.describe()}"


def test_int8_outside_its_tolerance_is_refused_and_fp32_served(tiny_model_dir: Path, onnx_int8_cache: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    settings = int8_settings(tiny_model_dir, onnx_int8_cache, int8_max_score_diff=0.0)
    with caplog.at_level("WARNING", logger="local_server"):
        loaded = onnx_runtime.load(settings)
    fp32 = load_onnx_backend(settings.model, quantize="none", threads=1, cache_dir=onnx_int8_cache)
    assert loaded.dtype == "float32" and loaded.backend.model_path == fp32.model_path
    assert np.array_equal(docs_logits(loaded.backend, loaded.tokenizer), docs_logits(fp32, loaded.tokenizer))
    assert loaded.note and loaded.note.startswith("serving fp32, not int8: int8 scores differ from fp32's by up to")
    assert "(allowed 0)" in loaded.note and "on this CPU" in loaded.note
    assert [r.getMessage() for r in caplog.records if r.name.startswith("local_server")] == [
        f"{settings.model}: {loaded.note}"]  # one line


def test_the_check_counts_rank_flips_and_refuses_nan() -> None:
    reference = [np.array([3.0, 1.0, -1.0]), np.array([0.0, 2.0])]
    flipped = [np.array([3.0, -1.5, -1.0]), np.array([0.0, 2.0])]  # one of the four document pairs flips
    check = int8.compare(reference, flipped, max_score_diff=0.6, min_rank_agreement=0.75)
    assert check.rank_agreement == 0.75 and abs(check.max_score_diff - 0.5486) < 1e-4 and check.passed
    assert not int8.compare(reference, flipped, max_score_diff=0.6, min_rank_agreement=0.8).passed
    assert not int8.compare(reference, flipped, max_score_diff=0.5, min_rank_agreement=0.75).passed
    assert not int8.compare(reference, [np.array([np.nan, 1.0, -1.0]), reference[1]], max_score_diff=1.0,
                            min_rank_agreement=0.0).passed


# Run under QEMU's Haswell model: the probe, the served precision and the check, and what full-range int8
# (quantised beforehand, on this machine) would have scored on that CPU.
ON_AVX2 = """
import json, sys
from pathlib import Path
from local_server.backends import onnx_runtime
from local_server.backends.onnx_runtime import OnnxBackend, check_int8, int8, load_onnx_backend
from local_server.settings import Settings
settings = Settings(model=sys.argv[1], offline=True, cache_dir=Path(sys.argv[2]), onnx_quantize="int8", threads=1)
loaded = onnx_runtime.load(settings)
fp32 = load_onnx_backend(settings.model, quantize="none", threads=1, cache_dir=settings.cache_dir)
full = check_int8(fp32, OnnxBackend(Path(sys.argv[3]), threads=1), loaded.tokenizer, settings)
print(json.dumps({"saturates": int8.saturates(), "dtype": loaded.dtype, "graph": str(loaded.backend.model_path),
                  "note": loaded.note, "full_range": [full.max_score_diff, full.rank_agreement, full.passed]}))
"""


def emulator() -> str:
    """qemu-x86_64 (Debian's qemu-user), which .ci/run installs; a developer without it is told how."""
    return required("qemu-x86_64", "apt-get install qemu-user", "the int8 check on an AVX2 CPU")


def test_int8_on_an_avx2_cpu_without_vnni_is_quantised_to_7_bits_and_checked(tiny_model_dir: Path,
                                                                             onnx_int8_cache: Path,
                                                                             tmp_path: Path) -> None:
    """The CPU that failed before: full-range int8 saturates there (far from fp32, refused by the check); the
    server probes it, quantises 7-bit weights instead and serves int8 only because that passes the check."""
    qemu = emulator()
    fp32 = load_onnx_backend(str(tiny_model_dir), quantize="none", threads=1, cache_dir=onnx_int8_cache)
    full_range = tmp_path / "full-range.onnx"
    int8.quantize(fp32.model_path, full_range, variant=int8.FULL_RANGE)
    shared = tmp_path / "cache"
    shutil.copytree(onnx_int8_cache, shared)
    run = subprocess.run([qemu, "-cpu", "Haswell", sys.executable, "-c", ON_AVX2,
                          str(tiny_model_dir), str(shared), str(full_range)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["saturates"] is True  # the probe sees the Haswell kernel, not this machine's
    assert f"-{int8.REDUCED_RANGE}-" in Path(result["graph"]).parent.name
    assert (result["dtype"], result["note"]) == ("int8", None)
    _, agreement, passed = result["full_range"]
    assert not passed and agreement < Settings().int8_min_rank_agreement  # saturation breaks fp32's order
