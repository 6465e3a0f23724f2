"""The async scoring path of one request: the score cache, else tokenise off the event loop, batch, fold windows;
then calibrate."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np

from local_server.batcher import Lane
from local_server.engine import RerankEngine, TruncationDirection
from local_server.registry import ServedModels
from local_server.score_cache import ScoreCache
from rerank_kit.scores import sigmoids


@dataclass(frozen=True)
class Scored:
    """One score per document (sigmoid in [0, 1], or the raw logit), the real tokens scored, and the model."""

    scores: np.ndarray
    tokens: int
    model: str


class Scorer:
    """Everything a route needs: `await scorer.score(model_name, query, documents, ...)`."""

    def __init__(self, models: ServedModels, *, cache: ScoreCache | None = None, tokenizer_threads: int = 2) -> None:
        self.models = models
        self.batcher = models.batcher
        self.cache = cache
        if cache is not None:
            models.on_unload.append(cache.drop_model)
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
        options = {"truncate": truncate, "direction": direction, "max_tokens_per_doc": max_tokens_per_doc,
                   "max_chunks_per_doc": max_chunks_per_doc, "instruction": instruction}
        if model.engine is None:  # nothing of a model not loaded is cached here: a full queue refuses before it loads
            self.batcher.check_room(len(documents))
        async with self.models.in_use(model) as (engine, lane):
            engine.check_pairs(len(documents), max_chunks_per_doc)  # refused whole, before any cache lookup
            compute = partial(self._compute, model.name, engine, lane, query, options)
            if self.cache is None:
                logits, tokens = await compute(documents)
            else:
                keys = self.cache.keys(engine.identity, query, documents, options)
                logits, tokens = await self.cache.scores(model.name, keys, documents, compute)
        return Scored(logits if raw_scores else np.array(sigmoids(logits)), int(tokens.sum()), model.name)

    async def _compute(self, model_name: str, engine: RerankEngine, lane: Lane, query: str, options: dict,
                       documents: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The documents' raw logits (each its best window) and tokens, from the model."""
        # Every document makes at least one pair: what cannot fit is refused before it costs a tokenisation.
        self.batcher.check_room(len(documents))
        encode = partial(engine.encode, query, documents, **options)
        pairs = await asyncio.get_running_loop().run_in_executor(self._tokenize_pools[model_name], encode)
        logits = await self.batcher.logits(pairs, lane)
        owners = [pair.doc for pair in pairs]
        best = np.full(len(documents), -np.inf)
        np.maximum.at(best, owners, logits)  # a document scores as its best window
        tokens = np.zeros(len(documents), dtype=np.int64)
        np.add.at(tokens, owners, [len(pair) for pair in pairs])
        return best, tokens
