"""Closed-loop load over loopback: `concurrency` workers, each sending its next request when the last
answers, bounded by a request count and a time budget (no new request starts after the budget; the
ones in flight finish and count)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from benchmarks.workload import Request

_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    pairs: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


async def _drive(url: str, body: Callable[[Request], dict], requests: list[Request], concurrency: int,
                 max_seconds: float, timeout: float) -> LoadResult:
    result = LoadResult()
    queue = iter(requests)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        started = time.perf_counter()
        deadline = started + max_seconds

        async def worker() -> None:
            for request in queue:
                if time.perf_counter() > deadline:
                    return
                sent = time.perf_counter()
                try:
                    response = await client.post(url, json=body(request))
                    response.raise_for_status()
                    _check(response.json(), request.pairs)
                except (httpx.HTTPError, ValueError) as exc:
                    result.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    continue
                result.latencies.append(time.perf_counter() - sent)
                result.pairs += request.pairs

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.seconds = time.perf_counter() - started
    return result


def _check(payload: object, expected: int) -> None:
    results = payload.get("results") if isinstance(payload, dict) else payload  # TEI answers a bare list
    if not isinstance(results, list) or len(results) != expected:
        raise ValueError(f"expected {expected} results, got {str(payload)[:120]}")


def run_load(url: str, body: Callable[[Request], dict], requests: list[Request], *, concurrency: int,
             max_seconds: float, timeout: float = 900.0) -> LoadResult:
    """Drive `url` (loopback only) with `requests` at `concurrency`; raise if every request failed."""
    if httpx.URL(url).host not in {h.strip("[]") for h in _LOOPBACK}:
        raise ValueError(f"the load generator only targets loopback addresses, not {url}")
    result = asyncio.run(_drive(url, body, requests, concurrency, max_seconds, timeout))
    if not result.latencies:
        raise RuntimeError(f"no request to {url} succeeded: {result.errors[:3]}")
    return result
