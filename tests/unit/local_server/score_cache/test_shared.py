"""The shared tier against a real redis-server: entries round-trip exactly and expire; an outage costs one short
timeout, is counted and logged once, and the tier comes back by itself when Redis does."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import numpy as np
import pytest

from local_server.score_cache.shared import RETRY_AFTER_S, TIMEOUT_S, SharedCache
from tests.support.redis_server import redis_server

ENTRIES = {b"k" * 16: (-2.718281828, 17), b"j" * 16: (3.5, 512)}


def test_entries_round_trip_exactly_and_expire(tmp_path: Path) -> None:
    async def run(url: str) -> tuple[dict, dict]:
        shared = SharedCache(url, ttl_s=0.5)
        shared.put_many(ENTRIES)
        await asyncio.gather(*shared._writes)
        found = await shared.get_many([*ENTRIES, b"x" * 16])
        await asyncio.sleep(0.8)
        expired = await shared.get_many(list(ENTRIES))
        await shared.close()
        return found, expired

    with redis_server(tmp_path) as redis:
        found, expired = asyncio.run(run(redis.url))
    assert found == {key: (float(np.float32(logit)), tokens) for key, (logit, tokens) in ENTRIES.items()}
    assert expired == {}


def test_an_outage_is_survived_counted_logged_once_and_ended_by_itself(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    async def run(redis) -> dict[str, object]:
        shared = SharedCache(redis.url, ttl_s=60)
        shared.put_many(ENTRIES)
        await asyncio.gather(*shared._writes)
        redis.kill()
        started = time.monotonic()
        during = [await shared.get_many(list(ENTRIES)) for _ in range(20)]
        outage_cost = time.monotonic() - started
        errors = shared.stats.errors
        redis.start()  # empty again: nothing persisted
        await asyncio.sleep(RETRY_AFTER_S + 0.1)
        shared.put_many(ENTRIES)
        await asyncio.gather(*shared._writes)
        after = await shared.get_many(list(ENTRIES))
        await shared.close()
        return {"during": during, "cost": outage_cost, "errors": errors, "after": after}

    with caplog.at_level(logging.WARNING, "local_server.score_cache.shared"), redis_server(tmp_path) as redis:
        result = asyncio.run(run(redis))
    assert result["during"] == [{}] * 20
    assert result["errors"] == 1  # the first call failed; the rest did not try while Redis rested
    assert result["cost"] < TIMEOUT_S + 0.5
    assert len(result["after"]) == 2  # reconnected by itself
    warnings = [r for r in caplog.records if "Redis at 127.0.0.1" in r.getMessage()]
    assert len(warnings) == 1 and "redis://" not in warnings[0].getMessage()


def test_a_full_redis_refuses_writes_and_still_serves_reads(tmp_path: Path) -> None:
    async def run(url: str) -> tuple[dict, dict, int]:
        shared = SharedCache(url, ttl_s=60)
        shared.put_many(dict(list(ENTRIES.items())[:1]))
        await asyncio.gather(*shared._writes)
        await shared._redis.config_set("maxmemory", 1)  # noeviction (the default policy): every write is refused
        shared.put_many(ENTRIES)
        await asyncio.gather(*shared._writes)
        found = await shared.get_many(list(ENTRIES))
        await shared._redis.config_set("maxmemory", 0)
        shared.put_many(ENTRIES)  # not resting: a full Redis is not an unreachable one
        await asyncio.gather(*shared._writes)
        later = await shared.get_many(list(ENTRIES))
        await shared.close()
        return found, later, shared.stats.errors

    with redis_server(tmp_path) as redis:
        found, later, errors = asyncio.run(run(redis.url))
    assert (len(found), len(later), errors) == (1, 2, 1)
