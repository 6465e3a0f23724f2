"""What users type as a server URL, forgiven, and what they are told when it cannot work (rerank_kit/client/urls.py)."""

from __future__ import annotations

import httpx
import pytest
import respx

from rerank_kit.client import (
    RerankClient,
    normalize_base_url,
)
from rerank_kit.errors import (
    BadRequestError,
    ConfigurationError,
    ConnectionFailedError,
)
from tests.support.respx_servers import BASE, scored_by_length


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


def test_v1_in_the_url_is_tried_first(mock: respx.MockRouter) -> None:
    for path in ("/info", "/v1/models", "/models"):
        mock.get(path).respond(404)
    native = mock.post("/rerank").mock(side_effect=scored_by_length)
    v1 = mock.post("/v1/rerank").mock(side_effect=scored_by_length)
    RerankClient(f"{BASE}/v1/rerank").rerank("q", ["a"])
    assert (native.call_count, v1.call_count) == (0, 1)


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
