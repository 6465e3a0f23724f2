"""RerankClient / AsyncRerankClient against respx-mocked servers: server kinds and wire formats, batching,
every error path and its family, and the retry/backoff timing with a fake clock (no real sleeping)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest
import respx

from rerank_kit.client import (
    AsyncRerankClient,
    RerankClient,
    ServerKind,
    WireFormat,
    normalize_base_url,
)
from rerank_kit.errors import (
    AuthError,
    BadRequestError,
    ConfigurationError,
    ConnectionFailedError,
    InvalidInputError,
    ModelNotServedError,
    NotARerankerError,
    RateLimitError,
    RerankError,
    RerankTimeoutError,
    ServerError,
    StatusError,
    TransportError,
)
from rerank_kit.names import same_model

BASE = "http://rr.test:8086"
KIT_INFO = {"model_id": "BAAI/bge-reranker-base", "model_type": {"reranker": {}}, "server": "rerank-kit",
            "max_docs": 100, "max_input_length": 512}
TEI_INFO = {"model_id": "BAAI/bge-reranker-base", "model_type": {"reranker": {}}, "max_client_batch_size": 32,
            "max_input_length": 512}


class FakeSleep:
    """Records requested sleeps instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def body(request: httpx.Request) -> dict:
    return json.loads(request.content)


def scored_by_length(request: httpx.Request) -> httpx.Response:
    """A server speaking the `documents` wire format whose score is len(document) / 100."""
    docs = body(request)["documents"]
    results = [{"index": i, "relevance_score": len(d) / 100} for i, d in enumerate(docs)]
    results.sort(key=lambda r: -r["relevance_score"])
    return httpx.Response(200, json={"id": "r1", "model": "BAAI/bge-reranker-base", "results": results,
                                     "usage": {"total_tokens": 10 * len(docs)}})


def kit_server(mock: respx.MockRouter, info: dict | None = None) -> respx.Route:
    mock.get("/info").respond(json=info or KIT_INFO)
    return mock.post("/rerank").mock(side_effect=scored_by_length)


@pytest.fixture
def mock():
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.mark.parametrize(("given", "expected"), [
    ("rr.test:8086", BASE),
    ("http://rr.test:8086", BASE),
    ("http://rr.test:8086/", BASE),
    ("http://rr.test:8086/v1", BASE),
    ("http://rr.test:8086/rerank", BASE),
    ("http://rr.test:8086/v1/rerank/", BASE),
    ("http://rr.test:8086/api/v1/rerank", BASE),
    ("http://http://rr.test:8086", BASE),
    ("  HTTPS://rr.test/v1  ", "https://rr.test"),
    ("https://gw.example.com/tenant/rerank-kit/v1/rerank", "https://gw.example.com/tenant/rerank-kit"),
])
def test_base_url_forgiveness(given: str, expected: str) -> None:
    assert normalize_base_url(given) == expected


@pytest.mark.parametrize("given", ["", "http://", "/v1/rerank", "https:///v1"])
def test_url_without_host_is_a_configuration_error(given: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        normalize_base_url(given)
    assert caught.value.hint == "use e.g. http://localhost:8086"


@pytest.mark.parametrize(("requested", "served", "same"), [
    ("BAAI/bge-reranker-base", "BAAI/bge-reranker-base", True),
    ("bge-reranker-base", "BAAI/bge-reranker-base", True),
    ("BGE-Reranker-Base", "/models/bge-reranker-base/", True),
    ("baai/bge-reranker-v2-m3", "BAAI/bge-reranker-base", False),
    ("BAAI/bge-reranker-base___OpenAI-API", "bge-reranker-base", True),
])
def test_model_matching(requested: str, served: str, same: bool) -> None:
    assert same_model(requested, served) is same


@pytest.mark.parametrize("key", [None, "", "   "])
def test_no_authorization_header_without_a_key(mock: respx.MockRouter, key: str | None) -> None:
    route = kit_server(mock)
    RerankClient(BASE, key).rerank("q", ["a"])
    assert "authorization" not in route.calls.last.request.headers


def test_bearer_header_with_a_key(mock: respx.MockRouter) -> None:
    route = kit_server(mock)
    RerankClient(BASE, " sk-1 ").rerank("q", ["a"])
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-1"


def test_native_rerank_sorted_with_texts_usage_and_top_n(mock: respx.MockRouter) -> None:
    route = kit_server(mock)
    response = RerankClient(BASE, model="bge-reranker-base").rerank("q", ["aa", "aaaa", "a"], top_n=2)
    sent = body(route.calls.last.request)
    assert sent == {"query": "q", "documents": ["aa", "aaaa", "a"], "return_documents": False,
                    "model": "bge-reranker-base", "top_n": 2}
    assert [(r.index, r.relevance_score, r.document.text) for r in response.results] == [
        (1, 0.04, "aaaa"), (0, 0.02, "aa")]
    assert response.model == "BAAI/bge-reranker-base"
    assert response.usage.total_tokens == 30


@pytest.mark.parametrize("top_n", [None, 0, -1])
def test_unset_top_n_keeps_every_document(mock: respx.MockRouter, top_n: int | None) -> None:
    route = kit_server(mock)
    response = RerankClient(BASE).rerank("q", ["a", "bb", "ccc"], top_n=top_n)
    assert len(response.results) == 3
    assert "top_n" not in body(route.calls.last.request)


def test_tei_wire_format_sends_texts_and_parses_the_bare_list(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(json=TEI_INFO)
    route = mock.post("/rerank").respond(json=[{"index": 1, "score": 0.9}, {"index": 0, "score": 0.2}])
    client = RerankClient(BASE)
    response = client.rerank("q", ["x", "y"])
    assert body(route.calls.last.request) == {"query": "q", "texts": ["x", "y"], "truncate": True,
                                               "raw_scores": False, "return_text": False}
    assert (client.profile.server, client.profile.wire) == (ServerKind.TEI, WireFormat.TEI)
    assert [(r.index, r.relevance_score, r.document.text) for r in response.results] == [(1, 0.9, "y"), (0, 0.2, "x")]
    assert response.model == "BAAI/bge-reranker-base"
    assert response.usage.total_tokens == 0


def test_tei_top_n_is_applied_by_the_client(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(json=TEI_INFO)
    mock.post("/rerank").respond(json=[{"index": 2, "score": 0.7}, {"index": 0, "score": 0.5},
                                       {"index": 1, "score": 0.1}])
    assert [r.index for r in RerankClient(BASE).rerank("q", ["a", "b", "c"], top_n=2).results] == [2, 0]


def test_openai_model_list_selects_v1_rerank_and_the_served_model(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(404)
    mock.get("/v1/models").respond(json={"object": "list", "data": [{"id": "bge-reranker-v2-m3"}]})
    route = mock.post("/v1/rerank").respond(json={"results": [{"index": 0, "relevance_score": 0.8}],
                                                  "meta": {"tokens": {"input_tokens": 7, "output_tokens": 0}}})
    response = RerankClient(BASE).rerank("q", ["a"])
    assert body(route.calls.last.request)["model"] == "bge-reranker-v2-m3"
    assert response.usage.total_tokens == 7
    assert response.model == "bge-reranker-v2-m3"


def test_infinity_models_list_and_string_documents(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(404)
    mock.get("/v1/models").respond(404)
    mock.get("/models").respond(json={"object": "list", "data": [
        {"id": "mixedbread-ai/mxbai-rerank-xsmall-v1", "capabilities": ["rerank"]}]})
    mock.post("/rerank").respond(json={"object": "rerank", "results": [
        {"index": 0, "relevance_score": 0.3, "document": "a"}, {"index": 1, "relevance_score": 0.6, "document": None}],
        "usage": {"prompt_tokens": 4, "total_tokens": 4}})
    client = RerankClient(BASE)
    response = client.rerank("q", ["a", "b"])
    assert (client.profile.server, client.profile.wire) == (ServerKind.INFINITY, WireFormat.DOCUMENTS)
    assert client.check().is_reranker is True
    assert [(r.index, r.document.text) for r in response.results] == [(1, "b"), (0, "a")]


@pytest.mark.parametrize(("entries", "is_reranker"), [
    ([{"id": "qwen2.5", "model_type": "LLM"}], False),
    ([{"id": "qwen2.5", "model_type": "LLM"}, {"id": "bge-reranker-base", "model_type": "rerank"}], True),
    ([{"id": "bge-reranker-base", "object": "model"}], None),
])
def test_model_lists_declare_rerankers(mock: respx.MockRouter, entries: list, is_reranker: bool | None) -> None:
    mock.get("/info").respond(404)
    mock.get("/v1/models").respond(json={"object": "list", "data": entries})
    mock.post("/v1/rerank").mock(side_effect=scored_by_length)
    client = RerankClient(BASE, model="bge-reranker-base" if len(entries) > 1 else None)
    report = client.check()
    assert client.profile.is_reranker is is_reranker
    assert report.ok is (is_reranker is not False)
    if is_reranker is False:
        assert "not a reranker" in report.message


def test_unknown_server_is_detected_by_its_first_response_and_remembered(mock: respx.MockRouter) -> None:
    for path in ("/info", "/v1/models", "/models"):
        mock.get(path).respond(404)
    native = mock.post("/rerank").respond(404)
    v1 = mock.post("/v1/rerank").mock(side_effect=scored_by_length)
    client = RerankClient(BASE)
    client.rerank("q", ["a"])
    client.rerank("q", ["b"])
    assert (client.profile.server, client.profile.wire) == (ServerKind.UNKNOWN, WireFormat.V1_DOCUMENTS)
    assert native.call_count == 1 and v1.call_count == 2
    assert mock.routes[0].call_count == 1  # /info asked once


def test_v1_in_the_url_is_tried_first(mock: respx.MockRouter) -> None:
    for path in ("/info", "/v1/models", "/models"):
        mock.get(path).respond(404)
    native = mock.post("/rerank").mock(side_effect=scored_by_length)
    v1 = mock.post("/v1/rerank").mock(side_effect=scored_by_length)
    RerankClient(f"{BASE}/v1/rerank").rerank("q", ["a"])
    assert (native.call_count, v1.call_count) == (0, 1)


def test_tei_found_from_a_texts_validation_error(mock: respx.MockRouter) -> None:
    for path in ("/info", "/v1/models", "/models"):
        mock.get(path).respond(404)

    def tei(request: httpx.Request) -> httpx.Response:
        if "texts" not in body(request):
            return httpx.Response(422, json={"error": "missing field `texts`", "error_type": "Validation"})
        return httpx.Response(200, json=[{"index": 0, "score": 0.4}])

    mock.post("/rerank").mock(side_effect=tei)
    client = RerankClient(BASE)
    assert client.rerank("q", ["a"]).results[0].relevance_score == 0.4
    assert (client.profile.server, client.profile.wire) == (ServerKind.UNKNOWN, WireFormat.TEI)


def test_large_inputs_are_split_by_max_docs_and_merged_with_global_indices(mock: respx.MockRouter) -> None:
    route = kit_server(mock, {**KIT_INFO, "max_docs": 2})
    docs = ["a" * n for n in (3, 1, 5, 2, 4)]
    response = RerankClient(BASE).rerank("q", docs, top_n=3)
    assert [len(body(call.request)["documents"]) for call in route.calls] == [2, 2, 1]
    assert all("top_n" not in body(call.request) for call in route.calls)
    assert [(r.index, r.document.text) for r in response.results] == [(2, "aaaaa"), (4, "aaaa"), (0, "aaa")]
    assert response.usage.total_tokens == 50


def test_batch_size_overrides_the_advertised_limit(mock: respx.MockRouter) -> None:
    route = kit_server(mock)
    RerankClient(BASE, batch_size=1).rerank("q", ["a", "b"])
    assert route.call_count == 2


def test_empty_documents_need_no_request(mock: respx.MockRouter) -> None:
    route = kit_server(mock)
    assert RerankClient(BASE).rerank("q", []).results == []
    assert route.call_count == 0


def test_empty_query_is_refused_locally(mock: respx.MockRouter) -> None:
    route = kit_server(mock)
    with pytest.raises(InvalidInputError, match="query is empty"):
        RerankClient(BASE).rerank("  ", ["a"])
    assert route.call_count == 0


# -- error paths --------------------------------------------------------------------------------------


def test_401_is_an_auth_error_with_a_hint_and_no_key_in_the_message(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(json=KIT_INFO)
    route = mock.post("/rerank").respond(401, json={"error": "missing or wrong API key", "error_type": "Unauthorized"})
    with pytest.raises(AuthError) as caught:
        RerankClient(BASE, "sk-secret-123", max_retries=3).rerank("q", ["a"])
    error = caught.value
    assert error.status == 401 and error.url == f"{BASE}/rerank"
    assert "RERANK_API_KEY" in error.hint and "rejected" in error.hint
    assert "sk-secret-123" not in str(error)
    assert route.call_count == 1


def test_401_without_a_key_says_a_key_is_required(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(401)
    with pytest.raises(AuthError) as caught:
        RerankClient(BASE).rerank("q", ["a"])
    assert caught.value.hint == "the server requires a key: set the API key to the server's RERANK_API_KEY"


def test_404_lists_the_url_forms_that_work(mock: respx.MockRouter) -> None:
    for path in ("/info", "/v1/models", "/models"):
        mock.get(path).respond(404)
    mock.post("/rerank").respond(404, json={"detail": "Not Found"})
    mock.post("/v1/rerank").respond(404, json={"detail": "Not Found"})
    with pytest.raises(BadRequestError) as caught:
        RerankClient(BASE).rerank("q", ["a"])
    assert caught.value.status == 404
    assert caught.value.hint == (f"use the server's base URL: {BASE}, {BASE}/v1 or {BASE}/v1/rerank all work "
                                 "(the client adds the route)")


def test_html_page_is_named_as_such(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(200, html="<html>Dify</html>")
    mock.get("/v1/models").respond(404, html="<html>404</html>")
    mock.get("/models").respond(404, html="<html>404</html>")
    mock.post("/rerank").respond(405, html="<html>Method Not Allowed</html>")
    mock.post("/v1/rerank").respond(405, html="<html>Method Not Allowed</html>")
    with pytest.raises(BadRequestError) as caught:
        RerankClient(BASE).rerank("q", ["a"])
    assert "an HTML page" in caught.value.message
    assert "not a rerank API" in caught.value.hint


def test_422_is_a_bad_request_and_never_retried(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(json=KIT_INFO)
    route = mock.post("/rerank").respond(422, json={"error": "query: must be a non-empty string",
                                                    "error_type": "Validation"})
    sleep = FakeSleep()
    with pytest.raises(BadRequestError, match="must be a non-empty string"):
        RerankClient(BASE, max_retries=3, sleep=sleep).rerank("q", ["a"])
    assert route.call_count == 1 and sleep.calls == []


def test_5xx_is_retried_with_exponential_backoff_then_raised(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(json=KIT_INFO)
    route = mock.post("/rerank").respond(500, json={"error": "internal error", "error_type": "Backend"})
    sleep = FakeSleep()
    client = RerankClient(BASE, max_retries=3, backoff=0.5, max_backoff=8.0, sleep=sleep, jitter=lambda: 0.5)
    with pytest.raises(ServerError) as caught:
        client.rerank("q", ["a"])
    # step = 0.5 * 2**attempt; wait = step/2 + step/2 * jitter = 0.75 * step
    assert sleep.calls == [0.375, 0.75, 1.5]
    assert route.call_count == 4
    assert caught.value.status == 500 and caught.value.hint == "the server failed: see its log"


def test_jitter_spans_half_to_full_step_and_max_backoff_caps(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(json=KIT_INFO)
    mock.post("/rerank").respond(502)
    jitters = iter([0.0, 1.0, 0.0, 1.0])
    sleep = FakeSleep()
    client = RerankClient(BASE, max_retries=4, backoff=1.0, max_backoff=3.0, sleep=sleep, jitter=lambda: next(jitters))
    with pytest.raises(ServerError):
        client.rerank("q", ["a"])
    # steps 1, 2, min(3, 4), min(3, 8) with jitter 0 -> half, 1 -> full
    assert sleep.calls == [0.5, 2.0, 1.5, 3.0]


def test_503_recovers_after_a_retry(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(json=KIT_INFO)
    route = mock.post("/rerank")
    route.side_effect = [httpx.Response(503, json={"error": "loading", "error_type": "Unhealthy"}),
                         httpx.Response(200, json={"results": [{"index": 0, "relevance_score": 0.5}]})]
    sleep = FakeSleep()
    response = RerankClient(BASE, sleep=sleep, jitter=lambda: 0.0).rerank("q", ["a"])
    assert response.results[0].relevance_score == 0.5
    assert sleep.calls == [0.25]


def test_429_honours_retry_after_seconds(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(json=KIT_INFO)
    route = mock.post("/rerank")
    route.side_effect = [httpx.Response(429, headers={"Retry-After": "3"}),
                         httpx.Response(429, headers={"Retry-After": "0"}),
                         httpx.Response(200, json={"results": [{"index": 0, "relevance_score": 0.5}]})]
    sleep = FakeSleep()
    RerankClient(BASE, max_retries=2, backoff=0.5, sleep=sleep, jitter=lambda: 0.0).rerank("q", ["a"])
    # Retry-After 3 beats the 0.25 s backoff; Retry-After 0 leaves the 0.5 s backoff
    assert sleep.calls == [3.0, 0.5]


def test_429_retry_after_http_date_uses_the_injected_clock(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(json=KIT_INFO)
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    later = format_datetime(datetime(2026, 1, 1, 12, 0, 7, tzinfo=UTC), usegmt=True)
    route = mock.post("/rerank")
    route.side_effect = [httpx.Response(429, headers={"Retry-After": later}),
                         httpx.Response(200, json={"results": [{"index": 0, "relevance_score": 0.5}]})]
    sleep = FakeSleep()
    RerankClient(BASE, sleep=sleep, clock=lambda: now, jitter=lambda: 0.0).rerank("q", ["a"])
    assert sleep.calls == [7.0]


def test_429_beyond_max_retry_wait_is_raised_at_once(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(json=KIT_INFO)
    route = mock.post("/rerank").respond(429, headers={"Retry-After": "120"},
                                         json={"error": "overloaded", "error_type": "Overloaded"})
    sleep = FakeSleep()
    with pytest.raises(RateLimitError) as caught:
        RerankClient(BASE, max_retry_wait=60, sleep=sleep).rerank("q", ["a"])
    assert route.call_count == 1 and sleep.calls == []
    assert caught.value.status == 429 and "retry later" in caught.value.hint


@pytest.mark.parametrize("broken", [httpx.ReadError("[Errno 104] Connection reset by peer"),
                                    httpx.RemoteProtocolError("Server disconnected without sending a response."),
                                    httpx.WriteError("[Errno 32] Broken pipe")])
def test_a_connection_broken_before_the_answer_is_retried(mock: respx.MockRouter, broken: Exception) -> None:
    mock.get("/info").respond(json=KIT_INFO)
    route = mock.post("/rerank")
    route.side_effect = [broken, httpx.Response(200, json={"results": [{"index": 0, "relevance_score": 0.5}]})]
    sleep = FakeSleep()
    response = RerankClient(BASE, sleep=sleep, jitter=lambda: 0.0).rerank("q", ["a"])
    assert route.call_count == 2 and response.results[0].relevance_score == 0.5


def test_a_connection_that_keeps_breaking_is_a_connection_error_with_a_hint(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(json=KIT_INFO)
    route = mock.post("/rerank").mock(side_effect=httpx.ReadError("[Errno 104] Connection reset by peer"))
    with pytest.raises(ConnectionFailedError) as caught:
        RerankClient(BASE, max_retries=2, sleep=FakeSleep()).rerank("q", ["a"])
    assert route.call_count == 3
    assert "broke before an answer" in str(caught.value) and "restarted" in caught.value.hint


def test_a_read_timeout_is_not_retried(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(json=KIT_INFO)
    route = mock.post("/rerank").mock(side_effect=httpx.ReadTimeout("timed out"))
    with pytest.raises(RerankTimeoutError):
        RerankClient(BASE, max_retries=3, sleep=FakeSleep()).rerank("q", ["a"])
    assert route.call_count == 1


def test_connect_errors_are_retried_then_raised_with_the_docker_hint() -> None:
    sleep = FakeSleep()
    client = RerankClient("localhost:8086", max_retries=2, sleep=sleep, jitter=lambda: 1.0)
    with respx.mock() as router, pytest.raises(ConnectionFailedError) as caught:
        router.get("http://localhost:8086/info").mock(side_effect=httpx.ConnectError("[Errno 111] Connection refused"))
        client.rerank("q", ["a"])
    assert sleep.calls == [0.5, 1.0]
    assert caught.value.url == "http://localhost:8086/info"
    assert caught.value.hint == ("is `rerank-kit serve` running on port 8086? From Docker, use "
                                 "http://host.docker.internal:8086 instead of localhost")


def test_connection_hints_for_docker_host_and_unknown_names() -> None:
    with respx.mock() as router:
        router.get("http://localhost/info").mock(side_effect=httpx.ConnectError("[Errno 111] Connection refused"))
        router.get("http://host.docker.internal:8086/info").mock(
            side_effect=httpx.ConnectError("Name or service not known"))
        router.get("http://rerank.internal:9000/info").mock(
            side_effect=httpx.ConnectError("[Errno -2] Name or service not known"))
        router.get("http://10.0.0.5:8086/info").mock(side_effect=httpx.ConnectError("[Errno 113] No route to host"))
        hints = {}
        for url in ("host.docker.internal:8086", "rerank.internal:9000", "10.0.0.5:8086", "http://localhost"):
            with pytest.raises(ConnectionFailedError) as caught:
                RerankClient(url, max_retries=0).rerank("q", ["a"])
            hints[url] = caught.value.hint
    assert hints["host.docker.internal:8086"].startswith("host.docker.internal only resolves inside Docker")
    assert hints["rerank.internal:9000"] == ("the host name 'rerank.internal' does not resolve: "
                                             "check the spelling of the URL")
    assert "10.0.0.5:8086 is reachable" in hints["10.0.0.5:8086"]
    assert hints["http://localhost"] == ("the URL has no port, so port 80 was tried: rerank-kit listens on "
                                         "http://localhost:8086 by default (from Docker: "
                                         "http://host.docker.internal:8086)")


def test_read_timeout_is_not_retried(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(json=KIT_INFO)
    route = mock.post("/rerank").mock(side_effect=httpx.ReadTimeout("timed out"))
    sleep = FakeSleep()
    with pytest.raises(RerankTimeoutError) as caught:
        RerankClient(BASE, timeout=12, max_retries=3, sleep=sleep).rerank("q", ["a"])
    assert route.call_count == 1 and sleep.calls == []
    assert caught.value.message == "no complete answer within 12s"
    assert "raise the timeout" in caught.value.hint


def test_connect_timeout_is_retried(mock: respx.MockRouter) -> None:
    route = mock.get("/info").mock(side_effect=httpx.ConnectTimeout("timed out"))
    sleep = FakeSleep()
    with pytest.raises(RerankTimeoutError, match="connecting took longer than 5s"):
        RerankClient(BASE, max_retries=1, sleep=sleep, jitter=lambda: 0.0).rerank("q", ["a"])
    assert route.call_count == 2 and sleep.calls == [0.25]


@pytest.mark.parametrize(("payload", "problem"), [
    ({"answer": 42}, "no result list"),
    ({"results": [{"index": 0}]}, "without a numeric score"),
    ({"results": [{"index": 0, "relevance_score": None}]}, "without a numeric score"),
    ({"results": [{"index": 3, "relevance_score": 0.1}]}, "invalid index"),
    ({"results": [{"index": 0, "relevance_score": "NaN"}]}, "without a numeric score"),
])
def test_json_that_is_not_a_rerank_response_names_the_expected_format(
        mock: respx.MockRouter, payload: dict, problem: str) -> None:
    mock.get("/info").respond(json=KIT_INFO)
    mock.post("/rerank").respond(json=payload)
    with pytest.raises(NotARerankerError) as caught:
        RerankClient(BASE).rerank("q", ["a"])
    assert problem in caught.value.message
    assert caught.value.hint.startswith("expected a Cohere-style {results: [{index, relevance_score}]} from a "
                                        "rerank-kit server")


def test_tei_html_answer_names_the_tei_shape(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(json=TEI_INFO)
    mock.post("/rerank").respond(200, html="<html>hello</html>")
    with pytest.raises(NotARerankerError) as caught:
        RerankClient(BASE).rerank("q", ["a"])
    assert caught.value.message == "the response is not a rerank response: an HTML page"
    assert caught.value.hint.startswith("expected TEI's list of {index, score} from a tei server")


def test_embedding_model_is_refused_before_any_rerank(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(json={**TEI_INFO, "model_type": {"embedding": {"pooling": "cls"}}})
    route = mock.post("/rerank")
    with pytest.raises(NotARerankerError, match="not a reranker"):
        RerankClient(BASE).rerank("q", ["a"])
    assert route.call_count == 0


# -- error families: what a caller catches by kind --------------------------------------------------------


@pytest.mark.parametrize("failure", [httpx.ConnectError("[Errno 111] Connection refused"),
                                     httpx.ConnectTimeout("timed out"), httpx.ReadTimeout("timed out"),
                                     httpx.ReadError("[Errno 104] Connection reset by peer")])
def test_connection_failures_and_timeouts_are_the_transport_family(mock: respx.MockRouter,
                                                                   failure: Exception) -> None:
    mock.get("/info").respond(json=KIT_INFO)
    mock.post("/rerank").mock(side_effect=failure)
    with pytest.raises(TransportError) as caught:
        RerankClient(BASE, max_retries=0).rerank("q", ["a"])
    assert isinstance(caught.value, ConnectionFailedError | RerankTimeoutError)
    assert caught.value.url == f"{BASE}/rerank" and caught.value.hint and caught.value.status is None


@pytest.mark.parametrize(("status", "headers", "family"), [
    (401, {}, AuthError),
    (403, {}, AuthError),
    (400, {}, BadRequestError),
    (404, {}, BadRequestError),
    (413, {}, BadRequestError),
    (429, {}, RateLimitError),
    (503, {"Retry-After": "1"}, RateLimitError),
    (503, {}, ServerError),
    (500, {}, ServerError),
    (501, {}, ServerError),
])
def test_http_error_answers_are_the_status_family(mock: respx.MockRouter, status: int, headers: dict,
                                                  family: type[StatusError]) -> None:
    mock.get("/info").respond(json=KIT_INFO)
    mock.post("/rerank").respond(status, headers=headers, json={"error": "refused", "error_type": "Test"})
    with pytest.raises(StatusError) as caught:
        RerankClient(BASE, max_retries=0).rerank("q", ["a"])
    assert type(caught.value) is family
    assert caught.value.status == status and caught.value.url == f"{BASE}/rerank" and caught.value.hint


@pytest.mark.parametrize(("headers", "family", "sleeps", "hint"), [
    # what rerank-kit answers when its queue is full: come back later, a rate limit
    ({"Retry-After": "1"}, RateLimitError, [1.0, 1.0], "the server is rate-limiting or overloaded"),
    # unavailable without saying when (loading, shutting down): a server error
    ({}, ServerError, [0.25, 0.5], "the server is overloaded or still loading its model"),
])
def test_503_is_retried_then_raised_as_rate_limit_only_with_retry_after(
        mock: respx.MockRouter, headers: dict, family: type[StatusError], sleeps: list[float], hint: str) -> None:
    mock.get("/info").respond(json=KIT_INFO)
    route = mock.post("/rerank").respond(503, headers=headers, json={"error": "busy", "error_type": "Overloaded"})
    sleep = FakeSleep()
    with pytest.raises(family) as caught:
        RerankClient(BASE, max_retries=2, sleep=sleep, jitter=lambda: 0.0).rerank("q", ["a"])
    assert route.call_count == 3 and sleep.calls == sleeps
    assert caught.value.status == 503 and caught.value.hint.startswith(hint)


def test_documents_that_are_not_text_are_invalid_input_and_never_sent(mock: respx.MockRouter) -> None:
    route = kit_server(mock)
    with pytest.raises(InvalidInputError, match="every document must be a string"):
        RerankClient(BASE).rerank("q", ["a", {"text": "b"}])  # type: ignore[list-item]
    assert route.call_count == 0


def test_families_do_not_overlap_and_all_are_rerank_errors() -> None:
    families = [ConfigurationError, InvalidInputError, TransportError, StatusError, NotARerankerError,
                ModelNotServedError]
    assert all(issubclass(family, RerankError) for family in families)
    assert not [(a, b) for a in families for b in families if a is not b and issubclass(a, b)]
    assert {cls.__base__ for cls in (ConnectionFailedError, RerankTimeoutError)} == {TransportError}
    assert {cls.__base__ for cls in (AuthError, BadRequestError, RateLimitError, ServerError)} == {StatusError}


# -- server kind and wire format are separate ------------------------------------------------------------


def test_a_model_listing_server_answering_on_rerank_keeps_its_kind(mock: respx.MockRouter) -> None:
    """Who answered comes from /v1/models; how to call it is learnt from the rerank route that works."""
    mock.get("/info").respond(404)
    mock.get("/v1/models").respond(json={"object": "list", "data": [{"id": "bge-reranker-base"}]})
    v1 = mock.post("/v1/rerank").respond(404)
    native = mock.post("/rerank").mock(side_effect=scored_by_length)
    client = RerankClient(BASE)
    report = client.check()
    assert (v1.call_count, native.call_count) == (1, 1)
    assert (report.server, report.wire) == (ServerKind.OPENAI_COMPATIBLE, WireFormat.DOCUMENTS)
    assert report.wire.description == "POST /rerank with documents"
    assert report.message.startswith(f"OK: openai-compatible server at {BASE} serves ")


def test_one_request_per_wire_format_while_detecting(mock: respx.MockRouter) -> None:
    """Infinity, rerank-kit and OpenAI-compatible proxies share one format: it is tried once, not once per kind."""
    mock.get("/info").respond(404)
    mock.get("/v1/models").respond(404)
    mock.get("/models").respond(json={"object": "list", "data": [{"id": "m", "capabilities": ["rerank"]}]})
    native = mock.post("/rerank").respond(404)
    v1 = mock.post("/v1/rerank").mock(side_effect=scored_by_length)
    client = RerankClient(BASE)
    client.rerank("q", ["a"])
    assert (native.call_count, v1.call_count) == (1, 1)
    assert (client.profile.server, client.profile.wire) == (ServerKind.INFINITY, WireFormat.V1_DOCUMENTS)


def test_a_failed_check_names_the_server_but_no_unproven_wire_format(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(404)
    mock.get("/v1/models").respond(json={"object": "list", "data": [{"id": "bge-reranker-base"}]})
    mock.post("/v1/rerank").respond(500)
    report = RerankClient(BASE, max_retries=0).check()
    assert isinstance(report.error, ServerError)
    assert (report.server, report.wire) == (ServerKind.OPENAI_COMPATIBLE, None)


# -- check() --------------------------------------------------------------------------------------------


def test_check_fills_the_report_from_info_and_the_probe(mock: respx.MockRouter) -> None:
    kit_server(mock)
    report = RerankClient(BASE, model="bge-reranker-base").check()
    assert report.ok and report.error is None
    assert (report.server, report.wire) == (ServerKind.RERANK_KIT, WireFormat.DOCUMENTS)
    assert (report.model, report.is_reranker) == ("BAAI/bge-reranker-base", True)
    assert (report.max_docs, report.max_input_length, report.served_models) == (100, 512, ["BAAI/bge-reranker-base"])
    assert report.probe_score == pytest.approx(len("Paris is the capital and largest city of France.") / 100)
    assert report.message == (f"OK: rerank-kit server at {BASE} serves BAAI/bge-reranker-base "
                              "(max 100 documents per request, max 512 tokens)")


def test_check_reports_a_model_that_is_not_served(mock: respx.MockRouter) -> None:
    route = kit_server(mock)
    report = RerankClient(BASE, model="bge-reranker-v2-m3").check()
    assert not report.ok and isinstance(report.error, ModelNotServedError)
    assert report.error.message == "model bge-reranker-v2-m3 is not served; the server serves BAAI/bge-reranker-base"
    assert report.error.hint == "set the model name to BAAI/bge-reranker-base"
    assert route.call_count == 0


def test_check_reports_auth_failures_without_raising(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(json=KIT_INFO)
    mock.post("/rerank").respond(401, json={"error": "missing or wrong API key", "error_type": "Unauthorized"})
    report = RerankClient(BASE, "wrong").check()
    assert not report.ok and isinstance(report.error, AuthError)
    assert report.server == "rerank-kit" and report.max_docs == 100
    assert "set the API key to the server's RERANK_API_KEY" in report.message


def test_check_reports_an_embedding_server(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(json={**TEI_INFO, "model_type": {"embedding": {}}})
    report = RerankClient(BASE).check()
    assert not report.ok and report.is_reranker is False and isinstance(report.error, NotARerankerError)
    assert "not a reranker" in report.message


# -- the async client runs the same flows --------------------------------------------------------------


def test_async_client_reranks_batches_and_checks(mock: respx.MockRouter) -> None:
    route = kit_server(mock, {**KIT_INFO, "max_docs": 2})

    async def scenario() -> tuple:
        async with AsyncRerankClient(BASE, model="bge-reranker-base") as client:
            response = await client.rerank("q", ["aaa", "a", "aaaa"], top_n=2)
            return response, await client.check()

    response, report = asyncio.run(scenario())
    assert [(r.index, r.document.text) for r in response.results] == [(2, "aaaa"), (0, "aaa")]
    assert route.call_count == 3  # two batches, then the probe
    assert report.ok and report.server == "rerank-kit"


def test_async_client_retries_with_an_async_fake_sleep(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(json=KIT_INFO)
    route = mock.post("/rerank")
    route.side_effect = [httpx.Response(500), httpx.Response(429, headers={"Retry-After": "2"}),
                         httpx.Response(200, json={"results": [{"index": 0, "relevance_score": 0.9}]})]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    async def scenario() -> float:
        async with AsyncRerankClient(BASE, sleep=fake_sleep, jitter=lambda: 0.0) as client:
            return (await client.rerank("q", ["a"])).results[0].relevance_score

    assert asyncio.run(scenario()) == 0.9
    assert slept == [0.25, 2.0]


def test_async_client_maps_errors_like_the_sync_one(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(json=KIT_INFO)
    mock.post("/rerank").respond(403, json={"error": "forbidden", "error_type": "Unauthorized"})

    async def scenario() -> None:
        async with AsyncRerankClient(BASE, "k") as client:
            await client.rerank("q", ["a"])

    with pytest.raises(AuthError) as caught:
        asyncio.run(scenario())
    assert caught.value.status == 403
