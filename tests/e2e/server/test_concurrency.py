"""Many simultaneous requests with mixed settings over real HTTP: every answer is 200 and equals the answer
to the same request sent alone (to a server with the score cache off, while the burst meets the cache).

This is the regression test for the shared-tokenizer race (two tokenizer threads in one Hugging Face
fast tokenizer raised `RuntimeError: Already borrowed`, and most concurrent requests got a 500).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.soak import compare
from tests.support.server_process import running_server
from tests.support.tiny_model import WORDS

MAX_LENGTH = 96  # small, so that truncation, windows and the query cap all come into play
CLIENTS = 32
ROUNDS = 5


def words(count: int, offset: int) -> str:
    """`count` one-token words of the tiny vocabulary, starting at a different word per offset."""
    return " ".join(WORDS[(offset + i * 7) % len(WORDS)] for i in range(count))


QUERIES = ["what is the weather in paris today", words(90, 3)]  # the second is past query_max_length (72)
DOCUMENTS = [words(n, offset) for offset, n in enumerate([4, 12, 40, 80, 150, 300, 9, 60])]  # 4 of them past 96
SHORT_DOCUMENTS = [*DOCUMENTS[:3], DOCUMENTS[6]]  # fit beside the short query: valid with truncate=false


def mixed_requests() -> list[tuple[str, dict[str, Any]]]:
    """Every setting that changes how the tokenizer truncates, on every route that takes it."""
    requests: list[tuple[str, dict[str, Any]]] = []
    for query, direction, raw in itertools.product(QUERIES, ["right", "left", "LEFT"], [False, True]):
        requests.append(("/rerank", {"query": query, "texts": DOCUMENTS, "truncation_direction": direction,
                                     "raw_scores": raw}))
    requests.append(("/rerank", {"query": QUERIES[0], "texts": SHORT_DOCUMENTS, "truncate": False}))
    requests.append(("/rerank", {"query": QUERIES[0], "texts": SHORT_DOCUMENTS, "truncate": False,
                                 "truncation_direction": "left", "return_text": True}))
    for query, route in itertools.product(QUERIES, ["/rerank", "/v1/rerank", "/v2/rerank", "/api/v1/rerank"]):
        requests.append((route, {"query": query, "documents": DOCUMENTS}))
        requests.append((route, {"query": query, "documents": DOCUMENTS, "max_tokens_per_doc": 10, "top_n": 3}))
        requests.append((route, {"query": query, "documents": DOCUMENTS, "max_chunks_per_doc": 3,
                                 "return_documents": True}))
    requests.append(("/v1/rerank", {"query": QUERIES[1], "documents": [{"text": d} for d in DOCUMENTS],
                                    "max_chunks_per_doc": 2, "max_tokens_per_doc": 30, "raw_scores": True}))
    return requests


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path) -> Iterator[str]:
    """The server as it ships: the score cache on."""
    with running_server(tiny_model_dir, max_length=str(MAX_LENGTH)) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def uncached_server(tiny_model_dir: Path) -> Iterator[str]:
    """The lone answers' server: the score cache off, every answer from the model."""
    with running_server(tiny_model_dir, max_length=str(MAX_LENGTH), cache_bytes="0") as base_url:
        yield base_url


async def send_all(base_url: str, requests: list[tuple[str, dict[str, Any]]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    gate = asyncio.Semaphore(CLIENTS)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        async def send(route: str, body: dict[str, Any]) -> httpx.Response:
            async with gate:
                return await client.post(route, json=body)

        return await asyncio.wait_for(asyncio.gather(*(send(r, b) for r, b in requests)), timeout=100)


def test_concurrent_mixed_requests_equal_their_lone_answers(server: str, uncached_server: str) -> None:
    """...sent alone to a server without the score cache, while the burst goes to one with it (its first round
    computes and joins in-flight work, the next ones hit)."""
    requests = mixed_requests()
    alone = []
    with httpx.Client(base_url=uncached_server, timeout=30) as client:
        for route, body in requests:
            response = client.post(route, json=body)
            assert response.status_code == 200, (route, body, response.text)
            alone.append(response.json())

    workload = [(i, *requests[i]) for _ in range(ROUNDS) for i in range(len(requests))]
    workload = workload[1::2] + workload[::2]  # the same body never arrives twice in a row
    responses = asyncio.run(send_all(server, [(route, body) for _, route, body in workload]))

    failures = [(route, r.status_code, r.text[:200]) for (_, route, _), r in zip(workload, responses, strict=True)
                if r.status_code != 200]
    assert not failures, f"{len(failures)} of {len(workload)} concurrent requests failed: {failures[:3]}"
    for (index, route, body), response in zip(workload, responses, strict=True):
        # Ties (the tiny random model gives some documents one score) may swap places; see compare().
        assert compare(alone[index], response.json()) is None, f"{route} {sorted(body)}"
    assert len(workload) >= 90
    hits = [line for line in httpx.get(f"{server}/metrics").text.splitlines()
            if line.startswith('rerank_cache_hits_total{tier="memory"}')]
    assert float(hits[0].split()[-1]) > 0, hits
