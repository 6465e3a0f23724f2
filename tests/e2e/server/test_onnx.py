"""A server on the ONNX Runtime backend over real HTTP: its fp32 scores equal the torch server's, it starts over a
truncated export in its cache (discarding it with one line), and /info says why int8 was refused."""

from __future__ import annotations

from pathlib import Path

import httpx

from local_server.backends.onnx_runtime.cache import ExportCache
from tests.support.onnx_cache import copy_of, truncate
from tests.support.server_process import running_server
from tests.support.tiny_model import SAMPLE_DOCS as DOCS
from tests.support.tiny_model import SAMPLE_QUERY as QUERY

SHORT_DOCS = ["paris is the capital city of france", "dog", "the weather in paris is sunny and the cat sat on the mat"]


def test_served_onnx_scores_match_the_torch_server(tiny_model_dir, live_server, tmp_path) -> None:
    import httpx

    body = {"query": QUERY, "documents": DOCS}
    expected = {r["index"]: r["relevance_score"]
                for r in httpx.post(f"{live_server}/rerank", json=body, timeout=30).json()["results"]}
    with running_server(tiny_model_dir, backend="onnx", cache_dir=str(tmp_path)) as onnx_server:
        resp = httpx.post(f"{onnx_server}/rerank", json=body, timeout=30)
        info = httpx.get(f"{onnx_server}/info", timeout=10).json()
    assert resp.status_code == 200
    got = {r["index"]: r["relevance_score"] for r in resp.json()["results"]}
    assert got.keys() == expected.keys()
    assert max(abs(got[i] - expected[i]) for i in got) < 1e-3
    assert info["model_dtype"] == "float32"
    assert list((tmp_path / "onnx").iterdir()), "the server did not cache its export under RERANK_CACHE_DIR"


def test_the_server_starts_over_a_truncated_export(tiny_model_dir: Path, onnx_fp32_cache: Path, tmp_path: Path,
                                                   live_server: str) -> None:
    """The crash loop this replaces: a truncated model.onnx made every start exit with a protobuf traceback."""
    cache, entry = copy_of(onnx_fp32_cache, tmp_path)
    truncate(entry)
    log = tmp_path / "server.log"
    body = {"query": QUERY, "texts": SHORT_DOCS}
    with running_server(tiny_model_dir, cache_dir=str(cache), log_file=log) as url:
        answer = httpx.post(f"{url}/rerank", json=body, timeout=30)
    assert answer.status_code == 200
    expected = httpx.post(f"{live_server}/rerank", json=body, timeout=30).json()
    assert [r["index"] for r in answer.json()] == [r["index"] for r in expected]
    assert max(abs(a["score"] - b["score"]) for a, b in zip(answer.json(), expected, strict=True)) < 1e-3
    assert log.read_text().count("discarding the ONNX cache entry") == 1
    assert ExportCache(cache).open(entry.name) is not None


def test_info_says_why_int8_was_refused(tiny_model_dir: Path, onnx_int8_cache: Path) -> None:
    with running_server(tiny_model_dir, cache_dir=str(onnx_int8_cache), onnx_quantize="int8",
                        int8_max_score_diff="0") as url:
        info = httpx.get(f"{url}/info", timeout=10).json()
        (card,) = httpx.get(f"{url}/v1/models", timeout=10).json()["data"]
    assert (info["model_dtype"], info["backend"]) == ("float32", "onnx")
    assert info["backend_note"].startswith("serving fp32, not int8:") and info["backend_note"] == card["backend_note"]
