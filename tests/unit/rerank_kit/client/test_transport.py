"""The client's transport policy (rerank_kit/client/transport.py) against respx-mocked servers: what is retried
(broken connections, 429, 5xx) with backoff, timed with a fake clock (no real sleeping), what is not (4xx, read
timeouts), and the error family and hint every failure becomes."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest
import respx

from rerank_kit.client import (
    RerankClient,
)
from rerank_kit.errors import (
    AuthError,
    BadRequestError,
    ConnectionFailedError,
    RateLimitError,
    RerankTimeoutError,
    ServerError,
    StatusError,
    TransportError,
)
from tests.support.respx_servers import BASE, KIT_INFO, FakeSleep

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
