"""The client's flows (rerank_kit/client/flows.py): the request a rerank sends (key, model, top_n), batching by
the server's max_docs with global indices, what is refused before any request, and check()'s report."""

from __future__ import annotations

import pytest
import respx

from rerank_kit.client import (
    RerankClient,
    ServerKind,
    WireFormat,
)
from rerank_kit.errors import (
    AuthError,
    InvalidInputError,
    ModelNotServedError,
    NotARerankerError,
    ServerError,
)
from tests.support.respx_servers import BASE, KIT_INFO, TEI_INFO, body, kit_server


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


def test_tei_top_n_is_applied_by_the_client(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(json=TEI_INFO)
    mock.post("/rerank").respond(json=[{"index": 2, "score": 0.7}, {"index": 0, "score": 0.5},
                                       {"index": 1, "score": 0.1}])
    assert [r.index for r in RerankClient(BASE).rerank("q", ["a", "b", "c"], top_n=2).results] == [2, 0]


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


def test_documents_that_are_not_text_are_invalid_input_and_never_sent(mock: respx.MockRouter) -> None:
    route = kit_server(mock)
    with pytest.raises(InvalidInputError, match="every document must be a string"):
        RerankClient(BASE).rerank("q", ["a", {"text": "b"}])  # type: ignore[list-item]
    assert route.call_count == 0


def test_a_failed_check_names_the_server_but_no_unproven_wire_format(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(404)
    mock.get("/v1/models").respond(json={"object": "list", "data": [{"id": "bge-reranker-base"}]})
    mock.post("/v1/rerank").respond(500)
    report = RerankClient(BASE, max_retries=0).check()
    assert isinstance(report.error, ServerError)
    assert (report.server, report.wire) == (ServerKind.OPENAI_COMPATIBLE, None)


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
