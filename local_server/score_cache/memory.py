"""The in-process tier: an LRU of document logits bounded by bytes."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

# What one entry costs this process once the cache is full and evicting: its 16-byte key object, the (model,
# logit, tokens) tuple with its float and int, its OrderedDict slot and link, and the room the table keeps as
# entries come and go: 277 to 362 bytes by how full the table is, up to ~410 while the table is rebuilt
# (tracemalloc on CPython 3.11, tests/unit/local_server/score_cache/test_memory.py).
ENTRY_BYTES = 368

Entry = tuple[float, int]  # a document's raw logit (its best window) and the tokens of its pairs


@dataclass
class MemoryStats:
    hits: int = 0
    evictions: int = 0


class MemoryCache:
    """Least recently used entries go first once `max_bytes` is reached. Owned by the event loop's thread:
    only the scorer's coroutines touch it, so it needs no lock."""

    def __init__(self, max_bytes: int) -> None:
        self.max_entries = max(1, max_bytes // ENTRY_BYTES)
        self._entries: OrderedDict[bytes, tuple[str, float, int]] = OrderedDict()
        self.stats = MemoryStats()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return len(self._entries) * ENTRY_BYTES

    def get(self, key: bytes) -> Entry | None:
        found = self._entries.get(key)
        if found is None:
            return None
        self._entries.move_to_end(key)
        self.stats.hits += 1
        return found[1], found[2]

    def put(self, model: str, key: bytes, entry: Entry) -> None:
        self._entries[key] = (model, *entry)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.stats.evictions += 1

    def drop_model(self, model: str) -> int:
        """Forget one model's entries (it was unloaded or loaded again); how many."""
        kept = OrderedDict((key, value) for key, value in self._entries.items() if value[0] != model)
        dropped = len(self._entries) - len(kept)
        self._entries = kept
        return dropped
