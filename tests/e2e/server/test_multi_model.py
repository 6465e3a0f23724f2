"""One `rerank-kit serve` process started from a config file serves a model of every family (cross-encoder,
`llm`, `qwen3`, `llm-layerwise`, `llm-lightweight`; tiny random weights, real architectures), over real HTTP on
loopback:
scores equal each family's reference; `model` routes (an unknown one is a typed 404 naming the served ones);
/v1/models lists them all and /info describes the default; concurrent mixed-model requests equal their lone
answers; a flood on one model does not starve another; Ollama's /api/rerank answers Dify's Ollama plugin as
that plugin calls and parses it; RAGFlow's Go Xinference driver's request shape works.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from benchmarks.soak import compare
from tests.support.families import DOCS, QUERY, flag_llm_reference, qwen3_model_card
from tests.support.flag_reference import reference_scores
from tests.support.server_process import running_server, write_models_config
from tests.support.tiny_model import LIGHTWEIGHT_OPTIONS, MAX_LENGTH

TOLERANCE = 1e-4
MODELS = ["minilm", "gemma", "qwen3", "minicpm", "gemma2-lite"]
SERVED = ", ".join(MODELS)


@pytest.fixture(scope="module")
def server(multi_model_server: str) -> str:
    return multi_model_server


def rerank(base_url: str, model: str | None, documents: list[str] = DOCS, route: str = "/rerank",
           **fields: Any) -> httpx.Response:
    body = {"query": QUERY, "documents": documents, **({"model": model} if model else {}), **fields}
    return httpx.post(f"{base_url}{route}", json=body, timeout=60)


def by_index(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    scores = np.full(len(results), np.nan)
    for result in results:
        scores[result["index"]] = result["relevance_score"]
    return scores


def test_each_model_scores_as_its_familys_reference(server: str, tiny_model_dir: Path, tiny_llm_dir: Path,
                                                    tiny_qwen3_dir: Path, tiny_layerwise_dir: Path,
                                                    tiny_lightweight_dir: Path) -> None:
    from FlagEmbedding import FlagReranker

    cross = FlagReranker(str(tiny_model_dir), use_fp16=False, devices=["cpu"], max_length=MAX_LENGTH)
    expected = np.array(cross.compute_score([[QUERY, d] for d in DOCS], max_length=MAX_LENGTH))
    assert np.abs(by_index(rerank(server, "minilm", raw_scores=True)) - expected).max() < TOLERANCE
    expected = flag_llm_reference(tiny_llm_dir, DOCS)
    assert np.abs(by_index(rerank(server, "gemma", raw_scores=True)) - expected).max() < TOLERANCE
    expected = qwen3_model_card(tiny_qwen3_dir, QUERY, DOCS)  # P(yes): the default calibrated score
    answer = rerank(server, "qwen3")
    assert np.abs(by_index(answer) - expected).max() < TOLERANCE and answer.json()["model"] == "qwen3"
    pairs = [[QUERY, d] for d in DOCS]
    for name, family, folder, options in (("minicpm", "llm-layerwise", tiny_layerwise_dir, {"cutoff_layers": [3]}),
                                        ("gemma2-lite", "llm-lightweight", tiny_lightweight_dir, LIGHTWEIGHT_OPTIONS)):
        [expected] = reference_scores(family, folder, [{"pairs": pairs, "options": options}], MAX_LENGTH)
        assert np.abs(by_index(rerank(server, name, raw_scores=True)) - np.array(expected)).max() < TOLERANCE, name


def test_the_request_instruction_reaches_the_families_that_take_one(server: str, tiny_qwen3_dir: Path) -> None:
    instruction = "Find the passage naming the capital"
    expected = qwen3_model_card(tiny_qwen3_dir, QUERY, DOCS, instruction=instruction)
    assert np.abs(by_index(rerank(server, "qwen3", instruction=instruction)) - expected).max() < TOLERANCE
    # a cross-encoder ignores it
    assert np.array_equal(by_index(rerank(server, "minilm", instruction=instruction)),
                          by_index(rerank(server, "minilm")))


def test_routing_model_lists_and_unknown_models(server: str) -> None:
    default = rerank(server, None)
    assert default.json()["model"] == "minilm" and np.array_equal(by_index(default), by_index(rerank(server, "minilm")))
    assert rerank(server, "gemma___VLLM").json()["model"] == "gemma"  # RAGFlow's suffixed names
    for route in ("/rerank", "/v1/rerank", "/api/rerank"):
        unknown = rerank(server, "bge-reranker-v2-m3", route=route)
        assert unknown.status_code == 404, route
        body = unknown.json()
        assert body["error_type"] == "ModelNotFound" and SERVED in body["error"]
    tei = httpx.post(f"{server}/rerank", json={"query": QUERY, "texts": DOCS, "model": "nope"}, timeout=30)
    assert tei.status_code == 404
    listed = httpx.get(f"{server}/v1/models", timeout=10).json()["data"]
    assert [(m["id"], m["kind"]) for m in listed] == [("minilm", "cross-encoder"), ("gemma", "llm"), ("qwen3", "qwen3"),
                                                       ("minicpm", "llm-layerwise"), ("gemma2-lite", "llm-lightweight")]
    info = httpx.get(f"{server}/info", timeout=10).json()
    assert info["model_id"] == "minilm" and info["models"] == MODELS
    assert info["kind"] == "cross-encoder" and info["max_input_length"] == MAX_LENGTH


def test_info_describes_a_lazily_loaded_default_model_before_and_after_it_loads(tiny_model_dir: Path,
                                                                                tmp_path: Path) -> None:
    config = write_models_config(tmp_path / "models.yaml", [
        {"name": "lazy", "path": str(tiny_model_dir), "backend": "torch", "lazy_load": True}])
    with running_server(tiny_model_dir, config=str(config)) as base_url:
        before = httpx.get(f"{base_url}/info", timeout=10).json()
        assert before["model_id"] == "lazy" and before["max_batch_tokens"] == 2048 and "device" not in before
        assert by_index(rerank(base_url, "lazy")).shape == (len(DOCS),)
        after = httpx.get(f"{base_url}/info", timeout=10).json()
        assert after["max_batch_tokens"] == 2048 and after["device"] == "cpu"


def test_the_rerank_kit_client_lists_every_served_model(server: str) -> None:
    from rerank_kit.client import RerankClient

    report = RerankClient(server, model="qwen3").check()
    assert report.ok and report.served_models == MODELS and report.model == "qwen3"
    assert report.max_input_length == 128  # qwen3's own (Dify's context size), not the default model's 64
    missing = RerankClient(server, model="nope").check()
    assert not missing.ok and type(missing.error).__name__ == "ModelNotServedError"
    assert SERVED in str(missing.error)


def mixed_requests() -> list[tuple[str, dict[str, Any]]]:
    requests: list[tuple[str, dict[str, Any]]] = []
    for model, route in itertools.product(MODELS, ["/rerank", "/v1/rerank", "/api/rerank"]):
        requests.append((route, {"model": model, "query": QUERY, "documents": DOCS}))
        requests.append((route, {"model": model, "query": "the dog sat", "documents": DOCS[::-1], "top_n": 2,
                                 "raw_scores": True}))
        requests.append((route, {"model": model, "query": QUERY, "documents": DOCS[:3],
                                 "instruction": "Judge relevance to a question about cities"}))
    for model in MODELS:
        requests.append(("/rerank", {"model": model, "query": QUERY, "texts": DOCS, "truncation_direction": "left"}))
        requests.append(("/v1/rerank", {"model": model, "query": QUERY, "documents": DOCS, "max_chunks_per_doc": 3,
                                        "max_tokens_per_doc": 16}))
    return requests


async def send_all(base_url: str, requests: list[tuple[str, dict[str, Any]]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base_url, timeout=120,
                                 limits=httpx.Limits(max_connections=32)) as client:
        return await asyncio.gather(*(client.post(route, json=body) for route, body in requests))


def test_concurrent_mixed_model_requests_equal_their_lone_answers(server: str) -> None:
    requests = mixed_requests()
    with httpx.Client(base_url=server, timeout=60) as client:
        alone = [client.post(route, json=body) for route, body in requests]
    assert [r.status_code for r in alone] == [200] * len(requests), [r.text for r in alone if r.status_code != 200]
    workload = [i for _ in range(3) for i in range(len(requests))]
    workload = workload[1::2] + workload[::2]
    responses = asyncio.run(send_all(server, [requests[i] for i in workload]))
    failures = [(requests[i], r.status_code, r.text[:200]) for i, r in zip(workload, responses, strict=True)
                if r.status_code != 200]
    assert not failures, failures[:3]
    for i, response in zip(workload, responses, strict=True):
        assert compare(alone[i].json(), response.json()) is None, requests[i]


def test_a_flood_on_one_model_does_not_starve_another(server: str) -> None:
    """Many big requests for the cross-encoder are queued first; one small qwen3 request sent after them is
    answered in the next round, long before the flood is done (a single line would serve it last)."""
    flood_docs = [f"{DOCS[2]} {i}" for i in range(300)]

    async def scenario() -> tuple[float, list[float], float]:
        async with httpx.AsyncClient(base_url=server, timeout=300, limits=httpx.Limits(max_connections=64)) as client:
            started = time.perf_counter()

            async def timed(body: dict[str, Any]) -> float:
                response = await client.post("/rerank", json=body)
                assert response.status_code == 200, response.text
                return time.perf_counter() - started

            flood = [asyncio.create_task(timed({"model": "minilm", "query": f"{QUERY} {n}", "documents": flood_docs}))
                     for n in range(24)]  # a query each: the score cache answers none of them
            await asyncio.sleep(0.5)  # the flood is queued
            sent = time.perf_counter() - started
            lone = await timed({"model": "qwen3", "query": QUERY, "documents": DOCS[:2]})
            return sent, list(await asyncio.gather(*flood)), lone

    sent, flood_done, lone_done = asyncio.run(scenario())
    later = sum(done > lone_done for done in flood_done)
    assert later >= len(flood_done) // 2, (sent, lone_done, sorted(flood_done))
    assert lone_done - sent < (max(flood_done) - sent) / 2


def dify_ollama_plugin_invoke(base_url: str, model: str, query: str, documents: list[str],
                              score_threshold: float | None = None, top_n: int | None = None) -> list[dict[str, Any]]:
    """What Dify's Ollama plugin (langgenius/dify-official-plugins models/ollama/models/rerank/rerank.py,
    OllamaRerankModel._invoke) sends and how it reads the answer, with `requests` as it uses."""
    import json

    import requests

    headers = {"Content-Type": "application/json"}
    endpoint_url = base_url.rstrip("/")
    if not endpoint_url.endswith("/rerank"):
        endpoint_url = endpoint_url + "/api/rerank"
    payload: dict[str, Any] = {"model": model, "query": query, "documents": documents}
    if top_n is not None:
        payload["top_n"] = top_n
    response = requests.post(endpoint_url, headers=headers, data=json.dumps(payload), timeout=(10, 300))
    response.raise_for_status()
    results = response.json().get("results", [])
    if top_n is not None:
        results = results[:top_n]
    docs = []
    for item in results:
        index = item["index"]
        text = item["document"] if "document" in item else (documents[index] if index < len(documents) else "")
        score = item["relevance_score"]
        if score_threshold is None or score >= score_threshold:
            docs.append({"index": index, "text": text, "score": score})
    return docs


def test_ollama_route_as_difys_ollama_plugin_calls_it(server: str, tiny_qwen3_dir: Path) -> None:
    expected = qwen3_model_card(tiny_qwen3_dir, QUERY, DOCS)
    docs = dify_ollama_plugin_invoke(server, "qwen3", QUERY, DOCS, top_n=3)
    assert [d["index"] for d in docs] == list(np.argsort(-expected)[:3])  # best first, as the plugin keeps them
    for doc in docs:
        assert doc["text"] == DOCS[doc["index"]] and abs(doc["score"] - expected[doc["index"]]) < TOLERANCE
    # validate_credentials: two documents, score_threshold=0.0001, no top_n
    assert len(dify_ollama_plugin_invoke(server, "minilm", "What is the capital of the United States?",
                                         ["Carson City is the capital city of the American state of Nevada.",
                                          "The Commonwealth of the Northern Mariana Islands is a group of islands "
                                          "in the Pacific Ocean."], score_threshold=0.0001)) == 2
    with pytest.raises(Exception) as error:  # the plugin raises requests' HTTPError, mapped to InvokeBadRequestError
        dify_ollama_plugin_invoke(server, "llama3", QUERY, DOCS)
    assert error.value.response.status_code == 404
    echoed = httpx.post(f"{server}/api/rerank", json={"model": "gemma", "query": QUERY, "documents": DOCS[:2],
                                                       "return_documents": True}, timeout=30).json()
    assert echoed["model"] == "gemma" and all(r["document"] == DOCS[r["index"]] for r in echoed["results"])


def test_ragflow_go_xinference_driver_request_shape(server: str) -> None:
    """RAGFlow's Go model path (API_PROXY_SCHEME=hybrid|go): its Xinference driver strips `/v1` from the base
    URL and posts {model, query, documents, top_n} to {host}/v1/rerank, reading results[].index/relevance_score."""
    base_url = f"{server}/v1"
    host = base_url.removesuffix("/v1")
    response = httpx.post(f"{host}/v1/rerank", json={"model": "gemma", "query": QUERY, "documents": DOCS,
                                                     "top_n": 3}, timeout=30)
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 3 and all(isinstance(r["index"], int) and 0 <= r["relevance_score"] <= 1 for r in results)
    assert [r["relevance_score"] for r in results] == sorted((r["relevance_score"] for r in results), reverse=True)
