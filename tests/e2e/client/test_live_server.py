"""The client against real `rerank-kit serve` processes over loopback HTTP (the tiny cross-encoder)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rerank_kit.client import AsyncRerankClient, RerankClient, ServerKind, WireFormat
from rerank_kit.errors import AuthError, ConnectionFailedError, ModelNotServedError, TransportError
from tests.support.server_process import free_port, running_server

QUERY = "what is the capital of france"
DOCS = ["paris is the capital of france", "the cat sat on the mat", "rain and cloud today",
        "python server client token batch", "the river in the city", "a dog and a cat"]
KEY = "s3cret-key-for-tests"
SERVED_NAME = "BAAI/bge-reranker-base"


@pytest.fixture(scope="module")
def keyed_server(tiny_model_dir: Path) -> Iterator[str]:
    """A second server: API key required, a hub-style served name, at most 4 documents per request."""
    with running_server(tiny_model_dir, api_key=KEY, served_model_name=SERVED_NAME, max_docs="4") as url:
        yield url


def server_scores(base_url: str, headers: dict[str, str] | None = None) -> list[float]:
    """The server's own score for each of DOCS by index, one TEI request per document (no client involved).

    The tiny random model gives near-equal scores (ties within 1e-7 that padding can reorder), so tests
    compare scores per index with a tolerance, never the order of tied documents.
    """
    return [httpx.post(f"{base_url}/rerank", json={"query": QUERY, "texts": [doc]}, headers=headers).json()[0]["score"]
            for doc in DOCS]


def by_index(response) -> list[float]:
    return [score for _, score in sorted((r.index, r.relevance_score) for r in response.results)]


def test_rerank_returns_the_servers_scores_sorted_with_texts_model_and_tokens(live_server: str) -> None:
    info = httpx.get(f"{live_server}/info").json()
    with RerankClient(live_server) as client:
        response = client.rerank(QUERY, DOCS)
        assert (client.profile.server, client.profile.wire) == (ServerKind.RERANK_KIT, WireFormat.DOCUMENTS)
    scores = [r.relevance_score for r in response.results]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert all(r.document.text == DOCS[r.index] for r in response.results)
    assert by_index(response) == pytest.approx(server_scores(live_server), abs=1e-6)
    assert response.model == info["model_id"]
    assert response.usage.total_tokens > 0


@pytest.mark.parametrize("form", ["{hostport}", "http://{hostport}/", "http://{hostport}/v1", "{hostport}/rerank",
                                  "http://{hostport}/v1/rerank", "http://http://{hostport}"])
def test_every_url_form_reaches_the_same_server(live_server: str, form: str) -> None:
    url = form.format(hostport=live_server.removeprefix("http://"))
    with RerankClient(url) as client:
        response = client.rerank(QUERY, DOCS, top_n=2)
    assert len(response.results) == 2
    assert [r.relevance_score for r in response.results] == pytest.approx(
        sorted(server_scores(live_server), reverse=True)[:2], abs=1e-6)


def test_batched_requests_merge_to_the_unbatched_ranking(live_server: str) -> None:
    with RerankClient(live_server) as whole, RerankClient(live_server, batch_size=4) as batched:
        expected = whole.rerank(QUERY, DOCS)
        merged = batched.rerank(QUERY, DOCS)
        top = batched.rerank(QUERY, DOCS, top_n=5)
    assert by_index(merged) == pytest.approx(by_index(expected), abs=1e-6)
    assert all(r.document.text == DOCS[r.index] for r in merged.results)
    assert [r.relevance_score for r in top.results] == pytest.approx(
        [r.relevance_score for r in expected.results][:5], abs=1e-6)


def test_async_client_matches_the_sync_client(live_server: str) -> None:
    async def scenario():
        async with AsyncRerankClient(live_server) as client:
            return await client.rerank(QUERY, DOCS), await client.check()

    response, report = asyncio.run(scenario())
    assert by_index(response) == pytest.approx(server_scores(live_server), abs=1e-6)
    assert report.ok and report.server == "rerank-kit"


def test_check_on_the_live_server(live_server: str) -> None:
    info = httpx.get(f"{live_server}/info").json()
    with RerankClient(live_server, model=info["model_id"].upper()) as client:
        report = client.check()
    assert report.ok, report.message
    assert (report.server, report.wire, report.model, report.is_reranker) == (
        ServerKind.RERANK_KIT, WireFormat.DOCUMENTS, info["model_id"], True)
    assert report.max_docs == info["max_docs"] and report.max_input_length == info["max_input_length"]
    assert 0.0 <= report.probe_score <= 1.0 and report.probe_tokens > 0


def test_key_required_server_checks_and_errors(keyed_server: str) -> None:
    missing = RerankClient(keyed_server).check()
    wrong = RerankClient(keyed_server, "not-the-key").check()
    assert isinstance(missing.error, AuthError) and missing.error.status == 401
    assert missing.error.hint == "the server requires a key: set the API key to the server's RERANK_API_KEY"
    assert isinstance(wrong.error, AuthError)
    assert wrong.error.hint == "the key was rejected: set the API key to the server's RERANK_API_KEY"
    assert "not-the-key" not in wrong.message and KEY not in wrong.message
    with RerankClient(keyed_server, KEY, model="bge-reranker-base") as client:
        report = client.check()
        assert report.ok, report.message
        assert report.model == SERVED_NAME and report.max_docs == 4


def test_server_advertised_max_docs_splits_requests(keyed_server: str) -> None:
    with RerankClient(keyed_server, KEY) as client:
        response = client.rerank(QUERY, DOCS)  # 6 documents, the server takes 4 per request
    assert sorted(r.index for r in response.results) == list(range(len(DOCS)))
    assert by_index(response) == pytest.approx(server_scores(keyed_server, {"Authorization": f"Bearer {KEY}"}),
                                               abs=1e-6)


def test_a_model_the_server_does_not_serve_fails_the_check(keyed_server: str) -> None:
    report = RerankClient(keyed_server, KEY, model="bge-reranker-v2-m3").check()
    assert isinstance(report.error, ModelNotServedError)
    assert report.error.message == f"model bge-reranker-v2-m3 is not served; the server serves {SERVED_NAME}"


def test_dead_port_is_a_connection_error_in_the_report() -> None:
    port = free_port()
    report = RerankClient(f"127.0.0.1:{port}", max_retries=0).check()
    assert not report.ok and isinstance(report.error, ConnectionFailedError)
    assert isinstance(report.error, TransportError) and report.server is None
    assert report.error.url == f"http://127.0.0.1:{port}/info"
    assert "host.docker.internal" in report.message


def test_the_client_rides_through_a_server_restart(tiny_model_dir: Path) -> None:
    """Requests keep flowing while the server is stopped (SIGTERM, drained) and started again on the same
    port: every call returns once, with the right scores; none is lost or duplicated."""
    import threading

    from tests.support.server_process import running_server_process

    port = free_port()
    queries = [f"{QUERY} {i}" for i in range(40)]
    answers: list[list[float]] = []
    errors: list[Exception] = []
    # Enough retries to cover a model load (backoff 0.5, 1, 2, 4, 4, ... s).
    client = RerankClient(f"http://127.0.0.1:{port}", max_retries=10, backoff=0.5, max_backoff=4.0)

    def send_all() -> None:
        for query in queries:
            try:
                answers.append(by_index(client.rerank(query, DOCS)))
            except Exception as exc:  # recorded, then asserted: nothing may fail
                errors.append(exc)
            time.sleep(0.05)

    sender = threading.Thread(target=send_all)
    with running_server_process(tiny_model_dir, port=port) as first:
        sender.start()
        while len(answers) < 5:
            assert sender.is_alive() and not errors, errors
            time.sleep(0.05)
        first.process.terminate()  # SIGTERM: the in-flight request is finished, then the port closes
        assert first.process.wait(timeout=60) == 0
    pending_at_restart = len(queries) - len(answers)
    with running_server_process(tiny_model_dir, port=port) as second:
        sender.join(timeout=120)
        with RerankClient(second.base_url) as fresh:
            expected = [by_index(fresh.rerank(query, DOCS)) for query in queries]
    client.close()
    assert not errors, errors
    assert pending_at_restart > 0  # the restart really happened while requests were being sent
    assert len(answers) == len(queries)
    for got, want in zip(answers, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-6)
