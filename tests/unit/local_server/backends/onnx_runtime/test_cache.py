"""The export cache survives faults: a damaged, partial or foreign entry is discarded with one log line and
built again (never served, never a crash loop: a server starts over one, tests/e2e/server/test_onnx.py); two
processes exporting one model into a shared cache end with one good entry; `kill -9` during an export leaves
nothing that is used."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from local_server.backends.onnx_runtime import load_onnx_backend
from local_server.backends.onnx_runtime.cache import ExportCache
from tests.support.onnx_cache import copy_of, drop_the_manifest, entries, flip_a_byte, foreign, truncate

QUERY = "which city is the capital of france"
DOCS = ["paris is the capital city of france", "dog", "the weather in paris is sunny and the cat sat on the mat"]

# A process that loads (exporting when needed) the fp32 export of argv[1] into the cache argv[2], logging to stderr.
LOAD = """
import logging, sys
logging.basicConfig(level=logging.INFO, format="%(message)s")
from pathlib import Path
from local_server.backends.onnx_runtime import load_onnx_backend
backend = load_onnx_backend(sys.argv[1], quantize="none", threads=1, cache_dir=Path(sys.argv[2]))
print(backend.model_path)
"""


@pytest.fixture(scope="module")
def batch(tiny_model_dir: Path) -> dict[str, np.ndarray]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return dict(tokenizer([QUERY] * len(DOCS), DOCS, padding=True, return_tensors="np"))


@pytest.mark.parametrize(("damage", "why"), [
    (truncate, "bytes, its manifest says"),
    (flip_a_byte, "does not match its checksum"),
    (drop_the_manifest, "no manifest"),
    (foreign, "a foreign entry"),
])
def test_a_broken_entry_is_discarded_with_one_line_and_built_again(damage, why: str, tiny_model_dir: Path,
                                                                   onnx_fp32_cache: Path, tmp_path: Path, batch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    expected = load_onnx_backend(str(tiny_model_dir), quantize="none", threads=1,
                                 cache_dir=onnx_fp32_cache).logits(batch)
    cache, entry = copy_of(onnx_fp32_cache, tmp_path)
    damage(entry)
    with caplog.at_level(logging.INFO, logger="local_server"):
        backend = load_onnx_backend(str(tiny_model_dir), quantize="none", threads=1, cache_dir=cache)
    (warning,) = [r.getMessage() for r in caplog.records  # ours: onnxruntime's optimiser warns on its own
                  if r.levelno >= logging.WARNING and r.name.startswith("local_server")]
    assert warning.startswith(f"discarding the ONNX cache entry {entry}") and why in warning
    assert any("ONNX export 1/2: tracing" in r.getMessage() for r in caplog.records)  # built again
    assert np.array_equal(backend.logits(batch), expected)
    assert entries(cache) == [entry] and ExportCache(cache).open(entry.name) is not None


def test_two_processes_exporting_one_model_at_once_end_with_one_good_entry(tiny_model_dir: Path,
                                                                           tmp_path: Path) -> None:
    """Two replicas starting on one shared volume: one exports, the other waits for it and uses its entry."""
    cache = tmp_path / "shared"
    processes = [subprocess.Popen([sys.executable, "-c", LOAD, str(tiny_model_dir), str(cache)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    (entry,) = entries(cache)
    assert {Path(out.strip()) for out, _ in outputs} == {entry / "model.onnx"}
    assert sum("ONNX export 1/2: tracing" in err for _, err in outputs) == 1  # one export, not two
    assert ExportCache(cache).open(entry.name) is not None
    assert not [path for path in (cache / "onnx").iterdir() if path.name.startswith(".export-")]


def test_kill_9_during_an_export_leaves_nothing_that_is_used(tiny_model_dir: Path, tmp_path: Path, batch,
                                                            onnx_fp32_cache: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """`docker kill` mid-export: the server and its export process die at once. What they leave is a scratch
    folder, never an entry; the next start removes it and exports."""
    cache = tmp_path / "cache"
    process = subprocess.Popen([sys.executable, "-c", LOAD, str(tiny_model_dir), str(cache)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        for line in process.stderr or ():  # the export process has started its scratch folder and is tracing
            if "ONNX export 1/2: tracing" in line:
                break
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    time.sleep(0.5)  # the export process goes with its group
    left = list((cache / "onnx").iterdir())
    assert [path for path in left if path.name.startswith(".export-")], "the kill did not land mid-export"
    assert not entries(cache)
    with caplog.at_level(logging.INFO, logger="local_server"):
        backend = load_onnx_backend(str(tiny_model_dir), quantize="none", threads=1, cache_dir=cache)
    assert any("left by an export that did not finish" in r.getMessage() for r in caplog.records)
    expected = load_onnx_backend(str(tiny_model_dir), quantize="none", threads=1,
                                 cache_dir=onnx_fp32_cache).logits(batch)
    assert np.array_equal(backend.logits(batch), expected)
    assert [path.name for path in entries(cache)] == [backend.model_path.parent.name]
