"""The shared rerank client: one `rerank(query, documents, top_n)` call for every integration.

A small package, one module per reason to change:
- `urls`: URL forgiveness and connection hints (users' mistakes);
- `servers`: who answered (`ServerKind`), how to call it (`WireFormat`), request bodies and response parsing;
- `transport`: the steps flows yield, retries and backoff, and transport/status failures as typed errors;
- `flows`: detection, rerank with batching, and check, written once as generators of steps;
- `drivers`: `RerankClient` (httpx.Client, time.sleep) and `AsyncRerankClient` (httpx.AsyncClient, asyncio.sleep);
- `forms`: a client from a credential form of strings (both Dify plugins), and one shared client per configuration.

Light by design: httpx + pydantic only (it ships inside the Dify plugin and is copied into RAGFlow).
"""

from __future__ import annotations

from rerank_kit.client.drivers import AsyncRerankClient, RerankClient
from rerank_kit.client.flows import PROBE_DOCUMENT, PROBE_QUERY, CheckReport
from rerank_kit.client.servers import ServerKind, ServerProfile, WireFormat
from rerank_kit.client.urls import normalize_base_url

__all__ = [
    "PROBE_DOCUMENT",
    "PROBE_QUERY",
    "AsyncRerankClient",
    "CheckReport",
    "RerankClient",
    "ServerKind",
    "ServerProfile",
    "WireFormat",
    "normalize_base_url",
]
