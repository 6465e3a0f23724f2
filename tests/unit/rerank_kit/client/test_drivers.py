"""The two drivers (rerank_kit/client/drivers.py): AsyncRerankClient runs the same flows as RerankClient, with
an async sleep, and maps errors the same way."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import respx

from rerank_kit.client import (
    AsyncRerankClient,
)
from rerank_kit.errors import (
    AuthError,
)
from tests.support.respx_servers import BASE, KIT_INFO, kit_server


def test_async_client_reranks_batches_and_checks(mock: respx.MockRouter) -> None:
    route = kit_server(mock, {**KIT_INFO, "max_docs": 2})

    async def scenario() -> tuple:
        async with AsyncRerankClient(BASE, model="bge-reranker-base") as client:
            response = await client.rerank("q", ["aaa", "a", "aaaa"], top_n=2)
            return response, await client.check()

    response, report = asyncio.run(scenario())
    assert [(r.index, r.document.text) for r in response.results] == [(2, "aaaa"), (0, "aaa")]
    assert route.call_count == 3  # two batches, then the probe
    assert report.ok and report.server == "rerank-kit"


def test_async_client_retries_with_an_async_fake_sleep(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(json=KIT_INFO)
    route = mock.post("/rerank")
    route.side_effect = [httpx.Response(500), httpx.Response(429, headers={"Retry-After": "2"}),
                         httpx.Response(200, json={"results": [{"index": 0, "relevance_score": 0.9}]})]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    async def scenario() -> float:
        async with AsyncRerankClient(BASE, sleep=fake_sleep, jitter=lambda: 0.0) as client:
            return (await client.rerank("q", ["a"])).results[0].relevance_score

    assert asyncio.run(scenario()) == 0.9
    assert slept == [0.25, 2.0]


def test_async_client_maps_errors_like_the_sync_one(mock: respx.MockRouter) -> None:
    mock.get("/info").respond(json=KIT_INFO)
    mock.post("/rerank").respond(403, json={"error": "forbidden", "error_type": "Unauthorized"})

    async def scenario() -> None:
        async with AsyncRerankClient(BASE, "k") as client:
            await client.rerank("q", ["a"])

    with pytest.raises(AuthError) as caught:
        asyncio.run(scenario())
    assert caught.value.status == 403
