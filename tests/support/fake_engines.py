"""Fake engines for the scoring path's unit tests (no model, no server): the document "2.0 -1.0" has two
windows, whose logits are 2.0 and -1.0 plus the engine's `offset`; window w of a document is 3 + w tokens."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from local_server.engine import EncodedPair
from local_server.registry import ServedModel, ServedModels
from local_server.score_cache import ScoreCache
from local_server.scoring import Scorer
from local_server.settings import Settings

QUERY = "which city is the capital of france"


class WindowedEngine:
    """Records each encode call and the thread it ran on; `gate`, when set, holds every forward pass until it
    opens (a computation kept in flight)."""

    batch_tokens = 1000
    family = SimpleNamespace(decoder=False, name="cross-encoder")

    def __init__(self, offset: float = 0.0, *, gate: threading.Event | None = None) -> None:
        self.offset = offset
        self.identity = f"fake engine {offset}".encode()
        self.gate = gate
        self.encoded: list[tuple[list[str], dict[str, Any], str]] = []
        self.scored_pairs = 0
        self.in_forward = threading.Event()

    def check_pairs(self, documents: int, max_chunks_per_doc: int) -> None:
        """Every request fits."""

    def encode(self, query: str, documents: Sequence[str], **options: Any) -> list[EncodedPair]:
        assert query == QUERY
        self.encoded.append((list(documents), options, threading.current_thread().name))
        return [EncodedPair(doc=doc, input_ids=[round(float(logit) * 1000)] + [0] * (2 + window), token_type_ids=None)
                for doc, text in enumerate(documents) for window, logit in enumerate(text.split())]

    def logits(self, pairs: Sequence[EncodedPair]) -> np.ndarray:
        self.in_forward.set()
        if self.gate is not None:
            self.gate.wait(timeout=30)
        self.scored_pairs += len(pairs)
        return np.array([p.input_ids[0] / 1000 + self.offset for p in pairs], dtype=np.float32)

    @property
    def documents_encoded(self) -> list[str]:
        return [document for documents, _, _ in self.encoded for document in documents]


def served(engines: dict[str, WindowedEngine], **settings: Any) -> ServedModels:
    base = Settings(model="unused", offline=True, max_wait_ms=0, **settings)
    return ServedModels(base, [ServedModel(name, base, engine.family.name, engine=engine)  # type: ignore[arg-type]
                               for name, engine in engines.items()], strict=True)


@pytest.fixture
def scorer_of() -> Iterator:
    """scorer_of(engines, cache_bytes=0, **settings): a Scorer over those fake engines with its batcher running
    (and a score cache of `cache_bytes` when not 0); stopped afterwards."""
    made: list[Scorer] = []

    def make(engines: dict[str, WindowedEngine], *, cache_bytes: int = 0, **settings: Any) -> Scorer:
        models = served(engines, **settings)
        models.batcher.start()
        cache = ScoreCache.from_settings(Settings(model="unused", cache_bytes=cache_bytes))
        made.append(Scorer(models, cache=cache, tokenizer_threads=1))
        return made[-1]

    yield make
    for scorer in made:
        scorer.close()
        scorer.batcher.stop()
