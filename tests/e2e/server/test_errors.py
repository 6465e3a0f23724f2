"""Bad input never crashes the server and always gets a clear, typed JSON error (real HTTP)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.server_process import running_server

GOOD = {"query": "what is the weather", "documents": ["it is sunny today", "paris is the capital of france"]}


@pytest.fixture(scope="module")
def small_limits_server(tiny_model_dir: Path):
    with running_server(tiny_model_dir, max_docs="5", max_request_bytes="2000000") as url:
        yield url


def assert_error(resp: httpx.Response, status: int, error_type: str, *needles: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error", "error_type"}
    assert body["error_type"] == error_type
    for needle in needles:
        assert needle in body["error"]


@pytest.mark.parametrize("path", ["/rerank", "/v1/rerank", "/v2/rerank", "/api/v1/rerank"])
@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"query": ""}, "query"),
        ({"query": "   "}, "query"),
        ({"query": None}, "query"),
        ({"query": 42}, "query"),
        ({"documents": []}, "documents"),
        ({"documents": None}, "documents"),
        ({"documents": [1, 2]}, "documents.0"),
        ({"documents": ["ok", None]}, "documents.1"),
        ({"documents": [{"title": "no text"}]}, "documents.0"),
        ({"documents": "a string, not a list"}, "documents"),
        ({"top_n": "three"}, "top_n"),
        ({"max_chunks_per_doc": 0}, "max_chunks_per_doc"),
    ],
)
def test_malformed_documents_bodies_get_422(live_server: str, path: str, patch: dict, needle: str) -> None:
    assert_error(httpx.post(f"{live_server}{path}", json={**GOOD, **patch}), 422, "Validation", needle)


def test_missing_fields_get_422(live_server: str) -> None:
    assert_error(httpx.post(f"{live_server}/v1/rerank", json={"documents": ["a"]}), 422, "Validation", "query")
    assert_error(httpx.post(f"{live_server}/rerank", json={"query": "q"}), 422, "Validation", "documents", "texts")
    assert_error(httpx.post(f"{live_server}/rerank", json=["not", "an", "object"]), 422, "Validation", "object")


@pytest.mark.parametrize(("patch", "needle"), [({"texts": []}, "texts"), ({"texts": [None]}, "texts.0"),
                                               ({"query": ""}, "query"),
                                               ({"truncation_direction": "up"}, "truncation")])
def test_malformed_tei_bodies_get_422(live_server: str, patch: dict, needle: str) -> None:
    body = {"query": "q", "texts": ["a", "b"], **patch}
    assert_error(httpx.post(f"{live_server}/rerank", json=body), 422, "Validation", needle)


def test_invalid_json_and_content_type(live_server: str) -> None:
    headers = {"content-type": "application/json"}
    assert_error(httpx.post(f"{live_server}/v1/rerank", content=b'{"query": "q", "documents": [', headers=headers),
                 400, "InvalidJson", "not valid JSON")
    assert_error(httpx.post(f"{live_server}/v1/rerank", content=b"\xff\xfe", headers=headers), 400, "InvalidJson")
    assert_error(httpx.post(f"{live_server}/v1/rerank", data={"query": "q"}), 415, "UnsupportedMediaType",
                 "application/json")
    # No content type at all is read as JSON (some hand-written clients omit it).
    assert httpx.post(f"{live_server}/v1/rerank", content=httpx.Request("POST", "/", json=GOOD).content).status_code \
        == 200


def test_unknown_routes_and_methods_are_json(live_server: str) -> None:
    assert_error(httpx.post(f"{live_server}/v3/rerank", json=GOOD), 404, "NotFound")
    assert_error(httpx.get(f"{live_server}/rerank"), 405, "MethodNotAllowed")


def test_too_many_documents_is_413(small_limits_server: str) -> None:
    body = {"query": "q", "documents": ["d"] * 6}
    assert_error(httpx.post(f"{small_limits_server}/v1/rerank", json=body), 413, "PayloadTooLarge",
                 "6 documents", "limit is 5", "RERANK_MAX_DOCS")
    assert_error(httpx.post(f"{small_limits_server}/rerank", json={"query": "q", "texts": ["d"] * 6}), 413,
                 "PayloadTooLarge")
    assert httpx.post(f"{small_limits_server}/v1/rerank", json={"query": "q", "documents": ["d"] * 5}).status_code \
        == 200


def test_body_over_the_byte_limit_is_413(small_limits_server: str) -> None:
    body = {"query": "q", "documents": ["cat " * 600_000]}  # 2.4 MB > 2 MB
    assert_error(httpx.post(f"{small_limits_server}/v1/rerank", json=body, timeout=30), 413, "PayloadTooLarge",
                 "RERANK_MAX_REQUEST_BYTES")


def test_one_megabyte_document_is_truncated_not_rejected(live_server: str) -> None:
    huge = "paris weather " * 80_000  # ~1.1 MB
    resp = httpx.post(f"{live_server}/v1/rerank", json={"query": "weather", "documents": [huge, "short"]}, timeout=60)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["usage"]["total_tokens"] <= 512 + 16  # the huge pair is cut to max_length; "short" adds a few
    assert all(0.0 <= r["relevance_score"] <= 1.0 for r in body["results"])


def test_unicode_of_every_script(live_server: str) -> None:
    docs = [
        "天气晴朗，巴黎是法国的首都", "الطقس مشمس اليوم في باريس", "आज पेरिस में धूप है", "Сегодня в Париже солнечно",
        "วันนี้อากาศแจ่มใส", "今日はパリは晴れです", "오늘 파리는 맑아요", "☀️🌧️🗼 emoji only", "e\u0301\u0308 combining",
        "zero\u200bwidth\u200djoiner", "\U0001f600" * 50, "mixed ascii and 中文 and عربى",
    ]
    resp = httpx.post(f"{live_server}/v1/rerank", json={"query": "météo à Paris ☀️", "documents": docs})
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert sorted(r["index"] for r in results) == list(range(len(docs)))
    assert all(r["document"]["text"] == docs[r["index"]] for r in results)


def test_server_survives_all_of_the_above(live_server: str) -> None:
    assert httpx.get(f"{live_server}/health").status_code == 200
    assert httpx.post(f"{live_server}/v1/rerank", json=GOOD).status_code == 200
