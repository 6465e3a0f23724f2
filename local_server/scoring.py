"""The async scoring path of one request: tokenise off the event loop, batch, fold windows, calibrate."""

from __future__ import annotations

import asyncio
import time
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
        self.active = 0  # requests between arriving here and their scores (changed on the event loop only)
        self.draining = False

    def drain(self, seconds: float) -> None:
        """Shutdown: let the requests already here finish for up to `seconds`, then fail the rest (503).

        Blocks; run it in a thread of its own. The server stops accepting connections meanwhile, so no
        new request arrives; a request still tokenising counts as in flight.
        """
        self.draining = True
        deadline = time.monotonic() + seconds
        while self.active and time.monotonic() < deadline:
            time.sleep(0.05)
        self.batcher.close("the server is shutting down and could not finish this request in time")

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
        self.active += 1
        try:
            pairs = await asyncio.get_running_loop().run_in_executor(self._tokenize_pool, encode)
            logits = await self.batcher.logits(pairs)
        finally:
            self.active -= 1
        best = np.full(len(documents), -np.inf)
        np.maximum.at(best, [p.doc for p in pairs], logits)  # a document scores as its best window
        return Scored(best if raw_scores else np.array(sigmoids(best)), sum(len(p) for p in pairs))
