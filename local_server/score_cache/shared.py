"""The shared tier: entries that the replicas of one deployment share through Redis (RERANK_CACHE_URL).

Redis is an optimisation, never a dependency. Every call is bounded by a short timeout; when Redis is down,
slow or full the request is answered from the model with the same scores, the error is counted (and logged at
most once a minute), Redis is left alone for a moment, and the next try reconnects.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from local_server.score_cache.memory import Entry

log = logging.getLogger(__name__)

_PREFIX = b"rerank-kit:score:v1:"
_VALUE = struct.Struct("<fI")  # the float32 logit (the model's own precision: exact) and the tokens
# A Redis round trip on a LAN takes well under a millisecond: anything near this is an outage, not load.
TIMEOUT_S = 0.2
# After a connection failure or timeout Redis is not asked for this long; then the next call reconnects.
RETRY_AFTER_S = 1.0
_LOG_EVERY_S = 60.0


@dataclass
class SharedStats:
    hits: int = 0
    errors: int = 0


class SharedCache:
    """Redis GET/SET of entries by key, each entry expiring after `ttl_s`."""

    def __init__(self, url: str, ttl_s: float) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self._redis = Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S,
                                     retry=Retry(NoBackoff(), 0))  # a retry would double an outage's cost
        where = urlsplit(url)
        self.where = f"{where.hostname}:{where.port or 6379}"  # never the URL: it may hold a password
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._resting_until = 0.0
        self._logged_at = -_LOG_EVERY_S
        self._writes: set[asyncio.Task] = set()
        self.stats = SharedStats()

    async def get_many(self, keys: Sequence[bytes]) -> dict[bytes, Entry]:
        """The entries Redis holds for these keys; none while it is unreachable."""
        if not keys or time.monotonic() < self._resting_until:
            return {}
        try:
            values = await self._redis.mget([_PREFIX + key for key in keys])
        except Exception as exc:  # redis' errors, OSError, timeouts: every failure means "not from Redis"
            self._failed(exc)
            return {}
        found = {key: _VALUE.unpack(value) for key, value in zip(keys, values, strict=True)
                 if value is not None and len(value) == _VALUE.size}
        self.stats.hits += len(found)
        return found

    def put_many(self, entries: Mapping[bytes, Entry]) -> None:
        """Store entries in the background: the answer never waits for Redis."""
        if not entries or time.monotonic() < self._resting_until:
            return
        task = asyncio.create_task(self._put(dict(entries)))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _put(self, entries: dict[bytes, Entry]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, (logit, tokens) in entries.items():
                    pipe.set(_PREFIX + key, _VALUE.pack(logit, tokens), px=self._ttl_ms)
                await pipe.execute()
        except Exception as exc:  # full (OOM), gone, slow: the entries stay in this process only
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        from redis.exceptions import ResponseError

        self.stats.errors += 1
        if not isinstance(exc, ResponseError):  # unreachable or slow, not merely full: let it rest
            self._resting_until = time.monotonic() + RETRY_AFTER_S
        now = time.monotonic()
        if now - self._logged_at >= _LOG_EVERY_S:
            self._logged_at = now
            log.warning("score cache: Redis at %s failed (%s: %s; %d errors so far); answering from the model "
                        "and retrying by itself", self.where, type(exc).__name__, exc, self.stats.errors)

    async def close(self) -> None:
        for task in list(self._writes):
            task.cancel()
        await self._redis.aclose()
