"""The exact score cache: a document's raw logit kept by a hash of everything that changes it, so repeated
work (FAQ traffic, "regenerate", agents retrieving twice, evaluation replays) is answered without the model.

Raw logits are cached, before calibration, so every answer (sigmoid, raw, ranked, thresholded) computed from a
hit equals the answer without the cache. Tiers: this process's LRU (memory), then Redis when RERANK_CACHE_URL
is set (shared), then the model. A key already being computed for another request is awaited, not computed
again (single flight), and a request that goes away cancels only work nobody else awaits. Everything here
runs on the event loop's thread, which owns the LRU and the flights.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from local_server.score_cache.keys import document_keys, model_identity, partition
from local_server.score_cache.memory import ENTRY_BYTES, Entry, MemoryCache
from local_server.score_cache.shared import SharedCache
from local_server.settings import Settings

__all__ = ["ENTRY_BYTES", "ScoreCache", "document_keys", "model_identity"]

# Scores the given documents: their best-window logits and their tokens, in their order.
Compute = Callable[[list[str]], Awaitable[tuple[np.ndarray, np.ndarray]]]


@dataclass(eq=False)
class _Flight:
    """One request's computation of its missing keys, which other requests may await."""

    results: dict[bytes, asyncio.Future[Entry]]
    task: asyncio.Task | None = None
    waiters: int = 0


@dataclass
class CacheStats:
    misses: int = 0  # documents the model scored
    joins: int = 0  # documents awaited from another request's computation


@dataclass(eq=False)
class ScoreCache:
    memory: MemoryCache
    shared: SharedCache | None = None
    partition: bytes = b""
    stats: CacheStats = field(default_factory=CacheStats)
    _flights: dict[bytes, _Flight] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> ScoreCache | None:
        """The cache RERANK_CACHE_BYTES bounds (None when 0: off), shared through RERANK_CACHE_URL when set."""
        if not settings.cache_bytes:
            return None
        url = settings.cache_url.get_secret_value() if settings.cache_url else None
        key = settings.api_key.get_secret_value() if settings.api_key else None
        return cls(MemoryCache(settings.cache_bytes), SharedCache(url, settings.cache_ttl_s) if url else None,
                   partition(key))

    def keys(self, identity: bytes, query: str, documents: Sequence[str], options: dict) -> list[bytes]:
        return document_keys(identity, self.partition, query, documents, options)

    async def scores(self, model: str, keys: Sequence[bytes], documents: Sequence[str],
                     compute: Compute) -> tuple[np.ndarray, np.ndarray]:
        """Each document's (logit, tokens), from memory, a computation in flight, Redis or `compute`; each
        distinct key computed once."""
        found: dict[bytes, Entry] = {}
        awaited: dict[bytes, _Flight] = {}
        missing: dict[bytes, str] = {}
        for key, document in zip(keys, documents, strict=True):
            if key in found or key in awaited or key in missing:
                continue
            if (entry := self.memory.get(key)) is not None:
                found[key] = entry
            elif (flight := self._flights.get(key)) is not None:
                awaited[key] = flight
                self.stats.joins += 1
            else:
                missing[key] = document
        if missing:
            awaited |= dict.fromkeys(missing, self._launch(model, missing, compute))
        flights = set(awaited.values())
        for flight in flights:
            flight.waiters += 1
        try:
            for key, flight in awaited.items():
                found[key] = await asyncio.shield(flight.results[key])
        finally:
            for flight in flights:
                flight.waiters -= 1
                if not flight.waiters and flight.task is not None:
                    flight.task.cancel()  # nobody wants it any more (a no-op once it is done)
        return (np.array([found[key][0] for key in keys], dtype=np.float64),
                np.array([found[key][1] for key in keys], dtype=np.int64))

    def _launch(self, model: str, missing: dict[bytes, str], compute: Compute) -> _Flight:
        loop = asyncio.get_running_loop()
        flight = _Flight({key: loop.create_future() for key in missing})
        for key in missing:
            self._flights[key] = flight
        flight.task = asyncio.create_task(self._fly(flight, model, missing, compute))
        return flight

    async def _fly(self, flight: _Flight, model: str, missing: dict[bytes, str], compute: Compute) -> None:
        try:
            if self.shared is not None:
                for key, entry in (await self.shared.get_many(list(missing))).items():
                    self._settle(flight, model, key, entry)
                    del missing[key]
            if missing:
                self.stats.misses += len(missing)
                logits, tokens = await compute(list(missing.values()))
                computed = {key: (float(logit), int(count))
                            for key, logit, count in zip(missing, logits, tokens, strict=True)}
                for key, entry in computed.items():
                    self._settle(flight, model, key, entry)
                if self.shared is not None:
                    self.shared.put_many(computed)
        except BaseException as exc:  # the requests awaiting these keys get what the owner got
            for future in flight.results.values():
                if not future.done():
                    future.cancel() if isinstance(exc, asyncio.CancelledError) else future.set_exception(exc)
                    if not future.cancelled():
                        future.exception()  # retrieved: a key nobody awaits any more must not log a traceback
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            for key in flight.results:
                if self._flights.get(key) is flight:
                    del self._flights[key]

    def _settle(self, flight: _Flight, model: str, key: bytes, entry: Entry) -> None:
        self.memory.put(model, key, entry)
        del self._flights[key]  # from here on the memory tier answers it
        flight.results[key].set_result(entry)

    def drop_model(self, model: str) -> None:
        self.memory.drop_model(model)

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()
