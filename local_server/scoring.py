"""The async scoring path of one request: tokenise off the event loop, batch, fold windows, calibrate."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np

from local_server.engine import TruncationDirection
from local_server.registry import ServedModels
from rerank_kit.scores import sigmoids


@dataclass(frozen=True)
class Scored:
    """One score per document (sigmoid in [0, 1], or the raw logit), the real tokens scored, and the model."""

    scores: np.ndarray
    tokens: int
    model: str


class Scorer:
    """Everything a route needs: `await scorer.score(model_name, query, documents, ...)`."""

    def __init__(self, models: ServedModels, *, tokenizer_threads: int = 2) -> None:
        self.models = models
        self.batcher = models.batcher
        # A pool of tokenizer threads per model: a flood of one model's requests waiting to be tokenised
        # must not hold up another model's, as its queued pairs do not (the batcher's lanes).
        self._tokenize_pools = {
            model.name: ThreadPoolExecutor(tokenizer_threads, thread_name_prefix=f"rerank-tokenize-{index}")
            for index, model in enumerate(models.models)}

    def close(self) -> None:
        for pool in self._tokenize_pools.values():
            pool.shutdown(wait=False, cancel_futures=True)

    async def score(
        self,
        model_name: str | None,
        query: str,
        documents: list[str],
        *,
        raw_scores: bool = False,
        truncate: bool = True,
        direction: TruncationDirection = "right",
        max_tokens_per_doc: int | None = None,
        max_chunks_per_doc: int = 1,
        instruction: str | None = None,
    ) -> Scored:
        model = self.models.get(model_name)  # an unknown name is refused before anything else
        # Every document makes at least one pair: what cannot fit is refused before it costs a tokenisation.
        self.batcher.check_room(len(documents))
        async with self.models.in_use(model) as (engine, lane):
            encode = partial(engine.encode, query, documents, truncate=truncate, direction=direction,
                             max_tokens_per_doc=max_tokens_per_doc, max_chunks_per_doc=max_chunks_per_doc,
                             instruction=instruction)
            pairs = await asyncio.get_running_loop().run_in_executor(self._tokenize_pools[model.name], encode)
            logits = await self.batcher.logits(pairs, lane)
        best = np.full(len(documents), -np.inf)
        np.maximum.at(best, [p.doc for p in pairs], logits)  # a document scores as its best window
        return Scored(best if raw_scores else np.array(sigmoids(best)), sum(len(p) for p in pairs), model.name)
