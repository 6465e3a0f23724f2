"""The zero-code path: RAGFlow's built-in HuggingFace (TEI) and OpenAI-API-Compatible rerank factories
pointed at a rerank-kit server, with their exact URL handling and request bodies.

Reproduced (our own code) from infiniflow/ragflow rag/llm/rerank_model.py:
- `HuggingfaceRerank.post`: up to the fix at HEAD it posted to f"http://{url}/rerank" (so the base URL had
  to be entered without a scheme); HEAD strips "/", adds "http://" when missing and "/rerank" unless the
  URL ends with it. Batches of 8, body {query, texts, raw_scores: false, truncate: true}, no auth, reads
  `[{index, score}]` with `scores[index + offset]`.
- `OpenAI_APIRerank.__init__`: before HEAD `urljoin(base_url, "/rerank")` unless "/rerank" is in the URL
  (which drops any path, e.g. /v1); HEAD keeps the path (`urljoin(url.rstrip('/') + '/', 'rerank')`).
  Body {model, query, documents, top_n: len(documents)}, `Authorization: Bearer <key>`, reads
  `results[].index/relevance_score`. The model name is cut at "___".
"""

from __future__ import annotations

from urllib.parse import urljoin

import httpx
import numpy as np
import pytest

from rerank_kit.client import RerankClient
from tests.support.ragflow_standin.harness import counting_proxy

QUERY = "how do I reset my password"
TEXTS = [f"document {i}: " + ("reset your password in settings" if i % 4 == 0 else "the office is closed on sundays")
         for i in range(20)]
TEI_BATCH = 8


def tei_endpoint_before_fix(url: str) -> str:
    return f"http://{url}/rerank"


def tei_endpoint_head(url: str) -> str:
    base = url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        base = f"http://{base}"
    return base if base.endswith("/rerank") else f"{base}/rerank"


def openai_endpoint_before_head(base_url: str) -> str:
    return base_url if "/rerank" in base_url else urljoin(base_url, "/rerank")


def openai_endpoint_head(base_url: str) -> str:
    url = (base_url or "").strip()
    return url.rstrip("/") if "/rerank" in url else urljoin(f"{url.rstrip('/')}/", "rerank").rstrip("/")


def huggingface_scores(endpoint: str, query: str, texts: list[str]) -> np.ndarray:
    scores = [0.0] * len(texts)
    for offset in range(0, len(texts), TEI_BATCH):
        body = {"query": query, "texts": texts[offset:offset + TEI_BATCH], "raw_scores": False, "truncate": True}
        response = httpx.post(endpoint, headers={"Content-Type": "application/json"}, json=body, timeout=30)
        response.raise_for_status()
        for item in response.json():
            scores[item["index"] + offset] = item["score"]
    return np.array(scores)


def openai_compatible_scores(endpoint: str, key: str, model_name: str, query: str, texts: list[str]) -> np.ndarray:
    body = {"model": model_name.split("___")[0], "query": query, "documents": texts, "top_n": len(texts)}
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    response = httpx.post(endpoint, headers=headers, json=body, timeout=30)
    response.raise_for_status()
    rank = np.zeros(len(texts), dtype=float)
    for item in response.json()["results"]:
        rank[item["index"]] = item["relevance_score"]
    return rank


@pytest.fixture(scope="module")
def expected(live_server: str) -> np.ndarray:
    """The server's calibrated scores for TEXTS, in input order, through the shared client."""
    with RerankClient(live_server) as client:
        by_index = {r.index: r.relevance_score for r in client.rerank(QUERY, TEXTS).results}
    return np.array([by_index[i] for i in range(len(TEXTS))])


def host_port(url: str) -> str:
    return url.removeprefix("http://")


@pytest.mark.parametrize("entered", ["{host}", "http://{host}", "http://{host}/", "http://{host}/rerank"])
def test_huggingface_factory_at_head(live_server: str, expected: np.ndarray, entered: str) -> None:
    with counting_proxy(live_server) as (proxy, log):
        endpoint = tei_endpoint_head(entered.format(host=host_port(proxy)))
        scores = huggingface_scores(endpoint, QUERY, TEXTS)
    assert np.allclose(scores, expected) and np.all((scores >= 0) & (scores <= 1))
    assert log.posts == ["/rerank"] * 3  # 20 texts in batches of 8


def test_huggingface_factory_before_the_fix_needs_host_port(live_server: str, expected: np.ndarray) -> None:
    """Old releases prefix "http://" themselves: enter host:port; a URL with a scheme doubles it."""
    scores = huggingface_scores(tei_endpoint_before_fix(host_port(live_server)), QUERY, TEXTS)
    assert np.allclose(scores, expected)
    assert tei_endpoint_before_fix(live_server).startswith("http://http://")


@pytest.mark.parametrize("entered", ["http://{host}", "http://{host}/", "http://{host}/v1", "http://{host}/rerank",
                                     "http://{host}/v1/rerank"])
@pytest.mark.parametrize("endpoint_of", [openai_endpoint_head, openai_endpoint_before_head])
def test_openai_api_compatible_factory(live_server: str, expected: np.ndarray, entered: str, endpoint_of) -> None:
    endpoint = endpoint_of(entered.format(host=host_port(live_server)))
    scores = openai_compatible_scores(endpoint, "any-key", "bge-reranker-v2-m3___OpenAI-API", QUERY, TEXTS)
    assert np.allclose(scores, expected) and np.all((scores >= 0) & (scores <= 1))
