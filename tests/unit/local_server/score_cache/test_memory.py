"""The memory tier's bound: what it counts per entry is what an entry costs this process (tracemalloc), so
RERANK_CACHE_BYTES bounds memory, not merely a count."""

from __future__ import annotations

import hashlib
import tracemalloc

import pytest

from local_server.score_cache.memory import ENTRY_BYTES, MemoryCache


@pytest.mark.parametrize("entries", [11_000, 29_000, 43_000, 100_000])  # the table just grown, and nearly full
def test_an_entry_costs_what_the_bound_counts_once_full_and_evicting(entries: int) -> None:
    cache = MemoryCache(entries * ENTRY_BYTES)
    tracemalloc.start()
    for i in range(entries * 3):  # full, then evicting as long again, twice: entries come and go
        key = hashlib.blake2b(str(i).encode(), digest_size=16).digest()  # keys are made per request, as here
        cache.put("model", key, (i * 0.001 - 3.0, 300 + i % 200))  # logits and token counts as served
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(cache) == entries and cache.bytes == entries * ENTRY_BYTES
    assert 0.7 * ENTRY_BYTES <= current / entries <= ENTRY_BYTES, current / entries
    assert peak / entries <= 1.15 * ENTRY_BYTES, peak / entries  # while the table is rebuilt


def test_the_least_recently_used_goes_first_and_a_model_can_be_forgotten() -> None:
    cache = MemoryCache(3 * ENTRY_BYTES)
    for key in (b"a", b"b", b"c"):
        cache.put("m", key, (1.0, 3))
    assert cache.get(b"a") == (1.0, 3)  # now b is the least recently used
    cache.put("other", b"d", (2.0, 4))
    assert (cache.get(b"b"), cache.stats.evictions, len(cache)) == (None, 1, 3)
    assert cache.drop_model("m") == 2
    assert (len(cache), cache.get(b"d")) == (1, (2.0, 4))


@pytest.mark.parametrize("max_bytes", [0, 1, ENTRY_BYTES - 1])
def test_a_bound_below_one_entry_still_keeps_one(max_bytes: int) -> None:
    cache = MemoryCache(max_bytes)
    cache.put("m", b"a", (1.0, 3))
    cache.put("m", b"b", (1.0, 3))
    assert len(cache) == 1
