"""The zero-code route: Dify's official `huggingface_tei` and `openai_api_compatible` plugins pointed at a
rerank-kit server. Each test sends exactly the requests those plugins send (langgenius/
dify-official-plugins: models/huggingface_tei/models/helper.py + rerank/rerank.py, and
models/openai_api_compatible/models/rerank/rerank.py, plus the SDK's OAICompatRerankModel it builds on)
and reads the responses the way they read them."""

from __future__ import annotations

import httpx
import pytest

QUERY = "what is the capital of france"
DOCS = ["the cat sat on the mat", "paris is the capital city of france", "rain and cloud today"]


def native_scores(base_url: str) -> dict[int, float]:
    body = httpx.post(f"{base_url}/rerank", json={"query": QUERY, "documents": DOCS}).json()
    return {r["index"]: r["relevance_score"] for r in body["results"]}


def test_huggingface_tei_plugin_validation_reads_a_reranker_from_info(live_server: str) -> None:
    # TeiHelper._get_tei_extra_parameter: GET {server_url}/info, first key of model_type, limits
    response = httpx.get(f"{live_server}/info", headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 200
    info = response.json()
    assert next(iter(info["model_type"])) == "reranker"
    assert isinstance(info.get("max_input_length", 512), int)
    assert isinstance(info.get("max_client_batch_size", 1), int)


def test_huggingface_tei_plugin_rerank_request(live_server: str) -> None:
    # TeiHelper.invoke_rerank: POST {server_url}/rerank {"query", "texts", "return_text": true}
    response = httpx.post(f"{live_server}/rerank", json={"query": QUERY, "texts": DOCS, "return_text": True},
                          headers={"Content-Type": "application/json"})
    response.raise_for_status()
    results = response.json()
    assert isinstance(results, list) and len(results) == len(DOCS)
    # HuggingfaceTeiRerankModel._invoke reads index, text and score of each, in the order given
    assert [r["text"] for r in results] == [DOCS[r["index"]] for r in results]
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert {r["index"]: r["score"] for r in results} == pytest.approx(native_scores(live_server))
    assert all(0.0 <= s <= 1.0 for s in scores)  # so its score_threshold (0.8 in validation) is meaningful


@pytest.mark.parametrize("endpoint_suffix", ["", "/v1"])
def test_openai_api_compatible_plugin_rerank_request(live_server: str, endpoint_suffix: str) -> None:
    # OpenAIRerankModel._invoke: POST {endpoint_url}/rerank, an empty Authorization header when no key,
    # {"model", "query", "documents", "top_n": top_n if not None else len(docs)}
    endpoint_url = live_server + endpoint_suffix
    response = httpx.post(f"{endpoint_url}/rerank",
                          headers={"Content-Type": "application/json", "Authorization": ""},
                          json={"model": "bge-reranker-v2-m3", "query": QUERY, "documents": DOCS, "top_n": 2},
                          timeout=60)
    response.raise_for_status()
    results = response.json()["results"]
    assert len(results) == 2
    expected = sorted(native_scores(live_server).items(), key=lambda item: -item[1])[:2]
    assert [r["index"] for r in results] == [index for index, _ in expected]
    assert [r["relevance_score"] for r in results] == pytest.approx([score for _, score in expected])


def test_sdk_oaicompat_rerank_request_with_null_top_n_and_documents(live_server: str) -> None:
    # dify_plugin OAICompatRerankModel._invoke: {"model", "query", "documents", "top_n": None,
    # "return_documents": true}; reads results[].index, relevance_score and document.text
    response = httpx.post(f"{live_server}/rerank", headers={"Content-Type": "application/json"},
                          json={"model": "any-name", "query": QUERY, "documents": DOCS, "top_n": None,
                                "return_documents": True}, timeout=60)
    response.raise_for_status()
    results = response.json()["results"]
    assert len(results) == len(DOCS)
    assert [r["document"]["text"] for r in results] == [DOCS[r["index"]] for r in results]
    assert {r["index"]: r["relevance_score"] for r in results} == pytest.approx(native_scores(live_server))
