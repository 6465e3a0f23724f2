"""The async scoring path of one request: tokenise off the event loop, batch, fold windows, calibrate."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np

from local_server.batcher import Batcher
from local_server.engine import RerankEngine, TruncationDirection
from rerank_kit.scores import sigmoids


@dataclass(frozen=True)
class Scored:
    """One score per document (sigmoid in [0, 1], or the raw logit) and the real tokens scored."""

    scores: np.ndarray
    tokens: int


class Scorer:
    """Everything a route needs: `await scorer.score(query, documents, ...)`."""

    def __init__(self, engine: RerankEngine, batcher: Batcher, *, tokenizer_threads: int = 2) -> None:
        self.engine = engine
        self.batcher = batcher
        self._tokenize_pool = ThreadPoolExecutor(tokenizer_threads, thread_name_prefix="rerank-tokenize")

    def close(self) -> None:
        self._tokenize_pool.shutdown(wait=False, cancel_futures=True)

    async def score(
        self,
        query: str,
        documents: list[str],
        *,
        raw_scores: bool = False,
        truncate: bool = True,
        direction: TruncationDirection = "right",
        max_tokens_per_doc: int | None = None,
        max_chunks_per_doc: int = 1,
    ) -> Scored:
        # Every document makes at least one pair: what cannot fit is refused before it costs a tokenisation.
        self.batcher.check_room(len(documents))
        encode = partial(self.engine.encode, query, documents, truncate=truncate, direction=direction,
                         max_tokens_per_doc=max_tokens_per_doc, max_chunks_per_doc=max_chunks_per_doc)
        pairs = await asyncio.get_running_loop().run_in_executor(self._tokenize_pool, encode)
        logits = await self.batcher.logits(pairs)
        best = np.full(len(documents), -np.inf)
        np.maximum.at(best, [p.doc for p in pairs], logits)  # a document scores as its best window
        return Scored(best if raw_scores else np.array(sigmoids(best)), sum(len(p) for p in pairs))
