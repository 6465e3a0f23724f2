"""Who answered and how to talk to it (rerank_kit/client/servers.py): server kinds and wire formats detected from
the metadata routes or the first answer, request bodies, and answers that are not a rerank response."""

from __future__ import annotations

import httpx
import pytest
import respx

from rerank_kit.client import (
    RerankClient,
    ServerKind,
    WireFormat,
)
from rerank_kit.errors import (
    NotARerankerError,
)
from tests.support.respx_servers import BASE, KIT_INFO, TEI_INFO, body, scored_by_length


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
