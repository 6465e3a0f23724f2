"""Operations over real HTTP: API key auth and cross-request batching. (A full queue's typed 503: test_load.py;
a key never logged: test_request_life.py; start-up failures: test_startup.py.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.support.server_process import running_server

BODY = {"query": "what is the weather", "documents": ["it is sunny today", "paris is the capital", "cat on mat"]}
KEY = "sk-test-not-for-logs-4242"


def test_api_key_is_required_on_rerank_routes_only(tiny_model_dir: Path) -> None:
    with running_server(tiny_model_dir, api_key=KEY) as url:
        for path in ("/rerank", "/v1/rerank", "/v2/rerank", "/api/v1/rerank"):
            missing = httpx.post(f"{url}{path}", json=BODY)
            assert missing.status_code == 401
            assert missing.json()["error_type"] == "Unauthorized"
            assert "Authorization: Bearer" in missing.json()["error"]
            wrong = httpx.post(f"{url}{path}", json=BODY, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            empty = httpx.post(f"{url}{path}", json=BODY, headers={"Authorization": "Bearer"})
            assert empty.status_code == 401
            ok = httpx.post(f"{url}{path}", json=BODY, headers={"Authorization": f"Bearer {KEY}"})
            assert ok.status_code == 200, ok.text
        lower_scheme = {"Authorization": f"bearer {KEY}"}
        tei = httpx.post(f"{url}/rerank", json={"query": "q", "texts": ["a"]}, headers=lower_scheme)
        assert tei.status_code == 200
        assert httpx.get(f"{url}/health").status_code == 200  # health stays open for probes


def test_concurrent_requests_share_batches(tiny_model_dir: Path) -> None:
    """With a batching window, concurrent requests are scored in fewer forward passes than requests."""
    with running_server(tiny_model_dir, max_wait_ms="200") as url:
        alone = httpx.post(f"{url}/v1/rerank", json=BODY).json()["results"]

        async def fire(n: int) -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                return await asyncio.gather(*(client.post("/v1/rerank", json=BODY) for _ in range(n)))

        batches_before = _metric(url, "rerank_batches_total")
        responses = asyncio.run(fire(12))
        batches = _metric(url, "rerank_batches_total") - batches_before
        assert all(r.status_code == 200 for r in responses)
        assert batches < 12, f"{batches} forward passes for 12 concurrent requests"
        for resp in responses:  # batching with others changes no score
            got = {r["index"]: r["relevance_score"] for r in resp.json()["results"]}
            assert got == pytest.approx({r["index"]: r["relevance_score"] for r in alone}, abs=1e-5)


def _metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")
