"""Every dialect over real HTTP on loopback; every score equals FlagReranker.compute_score's to 1e-5."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

QUERY = "what is the weather in paris today"
DOCS = [
    "it is sunny today in paris",
    "paris is the capital of france",
    "the cat sat on the mat",
    "rain and cloud over the river",
    "a python server for rerank model retrieval",
]


@pytest.fixture(scope="module")
def reference(tiny_model_dir: Path):
    """The library itself, in this process: the numbers every route must reproduce."""
    from FlagEmbedding import FlagReranker

    return FlagReranker(str(tiny_model_dir), devices="cpu")


def compute_score(reference, query: str, docs: list[str], *, normalize: bool = True) -> list[float]:
    return [float(s) for s in reference.compute_score([[query, d] for d in docs], normalize=normalize)]


def post(base_url: str, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{base_url}{path}", json=body, timeout=30)


def assert_ranked(results: list[dict], expected: list[float], score_key: str) -> None:
    """Sorted by score descending, original indices kept, each score equal to the reference."""
    scores = [r[score_key] for r in results]
    assert scores == sorted(scores, reverse=True)
    for r in results:
        assert r[score_key] == pytest.approx(expected[r["index"]], abs=1e-5)


@pytest.mark.parametrize("raw", [False, True])
def test_tei_rerank_matches_compute_score(live_server: str, reference, raw: bool) -> None:
    resp = post(live_server, "/rerank", {"query": QUERY, "texts": DOCS, "raw_scores": raw})
    assert resp.status_code == 200
    results = resp.json()
    assert isinstance(results, list) and len(results) == len(DOCS)
    assert all("text" not in r for r in results)
    assert_ranked(results, compute_score(reference, QUERY, DOCS, normalize=not raw), "score")
    if not raw:
        assert all(0.0 <= r["score"] <= 1.0 for r in results)


def test_tei_return_text_and_truncation_direction(live_server: str, reference) -> None:
    resp = post(live_server, "/rerank", {"query": QUERY, "texts": DOCS[:2], "return_text": True})
    assert {r["index"]: r["text"] for r in resp.json()} == {0: DOCS[0], 1: DOCS[1]}

    # Every word below is one token of the tiny vocabulary, so the kept window is known exactly.
    words = ["cat"] * 700 + ["paris", "is", "the", "capital", "of", "france"]
    long_doc = " ".join(words)
    budget = 512 - len(QUERY.split()) - 3  # [CLS] q [SEP] d [SEP]
    for direction, kept in (("left", words[-budget:]), ("right", words[:budget]), ("Left", words[-budget:])):
        resp = post(live_server, "/rerank",
                    {"query": QUERY, "texts": [long_doc], "truncation_direction": direction, "raw_scores": True})
        assert resp.status_code == 200, resp.text
        expected = compute_score(reference, QUERY, [" ".join(kept)], normalize=False)[0]
        assert resp.json()[0]["score"] == pytest.approx(expected, abs=1e-5)


def test_tei_truncate_false_rejects_long_input(live_server: str) -> None:
    resp = post(live_server, "/rerank", {"query": QUERY, "texts": ["cat " * 600], "truncate": False})
    assert resp.status_code == 422
    assert resp.json()["error_type"] == "Validation"
    assert "512" in resp.json()["error"]
    assert post(live_server, "/rerank", {"query": QUERY, "texts": ["cat " * 10], "truncate": False}).status_code == 200


@pytest.mark.parametrize("path", ["/rerank", "/v1/rerank", "/v2/rerank", "/api/v1/rerank"])
@pytest.mark.parametrize("raw", [False, True])
def test_documents_dialects_match_compute_score(live_server: str, reference, path: str, raw: bool) -> None:
    resp = post(live_server, path, {"model": "anything", "query": QUERY, "documents": DOCS, "raw_scores": raw})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model"] == Path(reference.model.name_or_path).name
    assert body["id"] and body["object"] == "rerank"
    assert len(body["results"]) == len(DOCS)
    assert_ranked(body["results"], compute_score(reference, QUERY, DOCS, normalize=not raw), "relevance_score")


def test_usage_counts_real_tokens(live_server: str, reference) -> None:
    expected = sum(len(reference.tokenizer(QUERY, d)["input_ids"]) for d in DOCS)
    body = post(live_server, "/v1/rerank", {"query": QUERY, "documents": DOCS}).json()
    assert body["usage"]["total_tokens"] == expected
    assert body["meta"]["tokens"]["input_tokens"] == expected
    assert body["meta"]["billed_units"]["search_units"] == 1


@pytest.mark.parametrize(("path", "documents_by_default"),
                         [("/rerank", False), ("/v2/rerank", False), ("/v1/rerank", True), ("/api/v1/rerank", True)])
def test_return_documents_defaults_and_override(live_server: str, path: str, documents_by_default: bool) -> None:
    body = post(live_server, path, {"query": QUERY, "documents": DOCS}).json()
    assert all(("document" in r) is documents_by_default for r in body["results"])
    body = post(live_server, path, {"query": QUERY, "documents": DOCS, "return_documents": True}).json()
    assert all(r["document"] == {"text": DOCS[r["index"]]} for r in body["results"])
    # Xinference (as RAGFlow sends it) puts booleans in strings.
    body = post(live_server, path, {"query": QUERY, "documents": DOCS, "return_documents": "false",
                                    "return_len": "true"}).json()
    assert all("document" not in r for r in body["results"])


def test_top_n_keeps_the_best(live_server: str, reference) -> None:
    expected = compute_score(reference, QUERY, DOCS)
    best_two = sorted(range(len(DOCS)), key=lambda i: -expected[i])[:2]
    body = post(live_server, "/v1/rerank", {"query": QUERY, "documents": DOCS, "top_n": 2}).json()
    assert [r["index"] for r in body["results"]] == best_two
    for unset in (0, -1, None, 99):  # Dify's daemon sends 0 for "unset"
        body = post(live_server, "/rerank", {"query": QUERY, "documents": DOCS, "top_n": unset}).json()
        assert len(body["results"]) == len(DOCS)


def test_jina_document_objects(live_server: str, reference) -> None:
    docs = [{"text": d} for d in DOCS[:3]]
    body = post(live_server, "/api/v1/rerank", {"model": "jina-reranker", "query": QUERY, "documents": docs}).json()
    assert_ranked(body["results"], compute_score(reference, QUERY, DOCS[:3]), "relevance_score")
    assert body["usage"]["total_tokens"] > 0


def test_cohere_v2_max_tokens_per_doc(live_server: str, reference) -> None:
    doc = "paris is the capital of france and the weather is sunny today"
    resp = post(live_server, "/v2/rerank", {"model": "m", "query": QUERY, "documents": [doc], "max_tokens_per_doc": 4,
                                            "raw_scores": True})
    expected = compute_score(reference, QUERY, [" ".join(doc.split()[:4])], normalize=False)[0]
    assert resp.json()["results"][0]["relevance_score"] == pytest.approx(expected, abs=1e-5)


def test_cohere_v1_max_chunks_per_doc_scores_best_window(live_server: str, reference) -> None:
    """A long document whose relevant part sits past the first window scores by its best window."""
    filler = ["cat", "sat", "mat", "dog"] * 200
    long_doc = " ".join([*filler, *["weather", "sunny", "today", "in", "paris"]])
    one = post(live_server, "/v1/rerank", {"query": QUERY, "documents": [long_doc], "raw_scores": True}).json()
    many = post(live_server, "/v1/rerank", {"query": QUERY, "documents": [long_doc], "raw_scores": True,
                                            "max_chunks_per_doc": 4}).json()
    assert one["results"][0]["relevance_score"] == pytest.approx(
        compute_score(reference, QUERY, [long_doc], normalize=False)[0], abs=1e-5)
    assert many["results"][0]["relevance_score"] >= one["results"][0]["relevance_score"] - 1e-5
    assert many["usage"]["total_tokens"] > one["usage"]["total_tokens"]  # more windows were scored
    short = post(live_server, "/v1/rerank", {"query": QUERY, "documents": DOCS, "max_chunks_per_doc": 4}).json()
    assert_ranked(short["results"], compute_score(reference, QUERY, DOCS), "relevance_score")


def test_info_models_health_metrics_docs(live_server: str) -> None:
    info = httpx.get(f"{live_server}/info").json()
    assert "reranker" in info["model_type"]
    assert info["max_input_length"] == 512 and info["max_client_batch_size"] == info["max_docs"] == 1000
    assert info["device"] == "cpu" and info["max_batch_tokens"] == 2048  # the CPU default token budget
    models = httpx.get(f"{live_server}/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["id"] == info["model_id"]
    assert httpx.get(f"{live_server}/health").status_code == 200
    post(live_server, "/rerank", {"query": QUERY, "texts": DOCS})
    metrics = httpx.get(f"{live_server}/metrics").text
    assert 'rerank_requests_total{route="/rerank",status="200"}' in metrics
    assert "rerank_batches_total" in metrics and "rerank_queue_pairs" in metrics
    assert httpx.get(f"{live_server}/docs").status_code == 200
    schemas = httpx.get(f"{live_server}/openapi.json").json()["components"]["schemas"]
    assert {"RerankRequest", "TEIRerankRequest"} <= schemas.keys()
