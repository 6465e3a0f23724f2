# Stand-in for infiniflow/ragflow rag/llm/rerank_model.py, v0.26+ form (HEAD after v0.27.0): the
# `Base` contract only, in our own code. `Base.similarity` is the single entry point: empty query or
# texts -> zeros and token count 0 without calling the provider; otherwise the subclass's
# `_compute_rank(query, texts) -> (scores, token_count)`, then `_normalize_rank`: scores already inside
# [0, 1] are returned unchanged, a batch with a spread of at least 1e-3 is min-max rescaled, a flatter
# one is clipped to [0, 1]. Providers override `_compute_rank`, never `similarity`.
# RAGFlow's shapes, kept as they are: an ABC without abstract methods, a list-valued _FACTORY_NAME.
# ruff: noqa: B024, B027, RUF012
from abc import ABC

import numpy as np


class Base(ABC):
    def __init__(self, key, model_name, **kwargs):
        pass

    def similarity(self, query: str, texts: list):
        if not query or not texts:
            return np.zeros(len(texts) if texts else 0, dtype=float), 0
        rank, token_count = self._compute_rank(query, texts)
        return self._normalize_rank(np.asarray(rank, dtype=float)), token_count

    def _compute_rank(self, query: str, texts: list):
        raise NotImplementedError("Please implement _compute_rank method!")

    @staticmethod
    def _normalize_rank(rank):
        if rank.size == 0:
            return rank
        low, high = float(np.min(rank)), float(np.max(rank))
        if low >= 0.0 and high <= 1.0:
            return rank
        if high - low < 1e-3:
            return np.clip(rank, 0.0, 1.0)
        return (rank - low) / (high - low)


class StandInListFactoryRerank(Base):
    """Stands for a built-in provider registered under several names (RAGFlow's CoHereRerank)."""

    _FACTORY_NAME = ["Cohere", "VLLM"]

    def __init__(self, key, model_name, base_url=None):
        self.model_name = model_name

    def _compute_rank(self, query: str, texts: list):
        raise NotImplementedError("stand-in: the Cohere call is not reproduced")
