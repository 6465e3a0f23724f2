"""The two drivers: run the flows' steps with httpx.Client and time.sleep, or httpx.AsyncClient and asyncio.sleep.

Nothing is decided here; everything a driver could get wrong differently from its twin lives in the flows.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import httpx

from rerank_kit.client.flows import CheckReport, ClientCore
from rerank_kit.client.transport import Done, Flow, Sleep, Step, advance
from rerank_kit.protocol import RerankResponse

_T = TypeVar("_T")


class RerankClient(ClientCore):
    """Synchronous client. `sleep` is injectable (tests pass a fake clock)."""

    def __init__(self, base_url: str, api_key: str | None = None, model: str | None = None, *,
                 sleep: Callable[[float], Any] = time.sleep, transport: httpx.BaseTransport | None = None,
                 **options: Any) -> None:
        super().__init__(base_url, api_key, model, **options)
        self._sleep = sleep
        self._http = httpx.Client(transport=transport, **self._http_options())

    def _execute(self, step: Step) -> Any:
        if isinstance(step, Sleep):
            return self._sleep(step.seconds)
        try:
            return self._http.request(step.method, step.path, json=step.body)
        except httpx.TransportError as exc:
            return exc

    def _run(self, flow: Flow[_T]) -> _T:
        step = advance(flow, None)
        while not isinstance(step, Done):
            step = advance(flow, self._execute(step))
        return step.value

    def rerank(self, query: str, documents: Sequence[str], top_n: int | None = None) -> RerankResponse:
        """Score `documents` against `query`; results sorted by score, `index` into `documents`."""
        return self._run(self._rerank_flow(query, documents, top_n))

    def check(self) -> CheckReport:
        """Validate URL, key, model and reranker-ness with metadata routes and a one-document probe."""
        return self._run(self._check_flow())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RerankClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncRerankClient(ClientCore):
    """Asynchronous twin of RerankClient: the same flows, run with httpx.AsyncClient."""

    def __init__(self, base_url: str, api_key: str | None = None, model: str | None = None, *,
                 sleep: Callable[[float], Any] = asyncio.sleep, transport: httpx.AsyncBaseTransport | None = None,
                 **options: Any) -> None:
        super().__init__(base_url, api_key, model, **options)
        self._sleep = sleep
        self._http = httpx.AsyncClient(transport=transport, **self._http_options())

    async def _execute(self, step: Step) -> Any:
        if isinstance(step, Sleep):
            slept = self._sleep(step.seconds)
            return await slept if inspect.isawaitable(slept) else None
        try:
            return await self._http.request(step.method, step.path, json=step.body)
        except httpx.TransportError as exc:
            return exc

    async def _run(self, flow: Flow[_T]) -> _T:
        step = advance(flow, None)
        while not isinstance(step, Done):
            step = advance(flow, await self._execute(step))
        return step.value

    async def rerank(self, query: str, documents: Sequence[str], top_n: int | None = None) -> RerankResponse:
        """Score `documents` against `query`; results sorted by score, `index` into `documents`."""
        return await self._run(self._rerank_flow(query, documents, top_n))

    async def check(self) -> CheckReport:
        """Validate URL, key, model and reranker-ness with metadata routes and a one-document probe."""
        return await self._run(self._check_flow())

    async def close(self) -> None:
        await self._http.aclose()

    aclose = close

    async def __aenter__(self) -> AsyncRerankClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
