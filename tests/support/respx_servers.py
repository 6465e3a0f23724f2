"""respx stand-ins of the servers the client meets (rerank-kit, TEI), and a clock that never sleeps, for the
client's unit tests (tests/unit/rerank_kit/client/; its conftest.py gives the `mock` router on BASE)."""

from __future__ import annotations

import json

import httpx
import respx

BASE = "http://rr.test:8086"
KIT_INFO = {"model_id": "BAAI/bge-reranker-base", "model_type": {"reranker": {}}, "server": "rerank-kit",
            "max_docs": 100, "max_input_length": 512}


TEI_INFO = {"model_id": "BAAI/bge-reranker-base", "model_type": {"reranker": {}}, "max_client_batch_size": 32,
            "max_input_length": 512}


class FakeSleep:
    """Records requested sleeps instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def body(request: httpx.Request) -> dict:
    return json.loads(request.content)


def scored_by_length(request: httpx.Request) -> httpx.Response:
    """A server speaking the `documents` wire format whose score is len(document) / 100."""
    docs = body(request)["documents"]
    results = [{"index": i, "relevance_score": len(d) / 100} for i, d in enumerate(docs)]
    results.sort(key=lambda r: -r["relevance_score"])
    return httpx.Response(200, json={"id": "r1", "model": "BAAI/bge-reranker-base", "results": results,
                                     "usage": {"total_tokens": 10 * len(docs)}})


def kit_server(mock: respx.MockRouter, info: dict | None = None) -> respx.Route:
    mock.get("/info").respond(json=info or KIT_INFO)
    return mock.post("/rerank").mock(side_effect=scored_by_length)
