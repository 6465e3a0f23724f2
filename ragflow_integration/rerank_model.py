"""RAGFlow rerank model backed by a rerank-kit server, for RAGFlow v0.22 through current HEAD.

The installer copies this module into RAGFlow as `rag/llm/rerank_kit_model.py` and appends two lines to
`rag/llm/rerank_model.py`, after `Base` is defined:

    from rag.llm.rerank_kit_model import build_rerank_class as _build_rerank_kit_class
    RerankKitRerank = _build_rerank_kit_class(Base)

so the class lives in `rag.llm.rerank_model`'s namespace, where `rag/llm/__init__.py` registers every
`Base` subclass that has a `_FACTORY_NAME`. Building the class from the `Base` it is handed (rather than
importing `Base` here) avoids a circular import and lets it adapt to the two `Base` contracts:
- v0.26+: `Base.similarity` short-circuits empty input, calls `_compute_rank(query, texts)` and then
  `_normalize_rank`, which leaves scores already in [0, 1] untouched; subclasses must not override it.
- before v0.26: every subclass implements `similarity(query, texts) -> (np.ndarray, int)` itself.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

from rerank_kit import BASE_URL_ENV, DEFAULT_PORT
from rerank_kit.client import RerankClient
from rerank_kit.names import without_platform_suffix
from rerank_kit.scores import sigmoids

FACTORY_NAME = "rerank-kit"
DEFAULT_BASE_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
def calibrated(scores: np.ndarray) -> np.ndarray:
    """Scores in [0, 1] pass through; a server answering raw logits is mapped by the sigmoid.

    RAGFlow min-max rescales out-of-range scores, which inflates the best chunk of a weak batch to 1.0;
    calibrated scores keep `similarity_threshold` meaningful.
    """
    if scores.size and (scores.min() < 0.0 or scores.max() > 1.0):
        return np.array(sigmoids(scores))
    return scores


def estimated_tokens(query: str, texts: list[str]) -> int:
    """A rough count (whitespace words) for servers that report no usage; at least 1."""
    return max(1, sum(len(text.split()) for text in [query, *texts]))


@functools.cache
def shared_client(base_url: str, api_key: str | None, model: str | None) -> RerankClient:
    """One client per configuration and process: RAGFlow builds a model object per request, and this
    keeps the connection pool and the server's detected dialect across them (httpx.Client is thread-safe)."""
    return RerankClient(base_url, api_key=api_key, model=model)


class RerankKitModel:
    """The scoring half of the RAGFlow class: holds the settings and calls the shared client."""

    _FACTORY_NAME = FACTORY_NAME

    def __init__(self, key: str | None, model_name: str, base_url: str | None = None, **kwargs: Any) -> None:
        self.api_key = key or None
        self.model_name = without_platform_suffix(model_name or "")
        self.base_url = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL

    def _compute_rank(self, query: str, texts: list[str]) -> tuple[np.ndarray, int]:
        """Score every text in one request; returns (scores in input order, token count > 0)."""
        client = shared_client(self.base_url, self.api_key, self.model_name or None)
        response = client.rerank(query, list(texts))
        scores = np.zeros(len(texts), dtype=float)
        for result in response.results:
            scores[result.index] = result.relevance_score
        return calibrated(scores), response.usage.total_tokens or estimated_tokens(query, texts)


def _similarity(self: RerankKitModel, query: str, texts: list[str]) -> tuple[np.ndarray, int]:
    """Pre-v0.26 entry point: what v0.26's `Base.similarity` does, minus the normalisation we never need."""
    if not query or not texts:
        return np.zeros(len(texts) if texts else 0, dtype=float), 0
    return self._compute_rank(query, texts)


def build_rerank_class(base: type) -> type:
    """The RAGFlow rerank class: a subclass of `base` (RAGFlow's `rag.llm.rerank_model.Base`).

    `similarity` is added only when `base` has no `_compute_rank` contract of its own (before v0.26).
    """
    namespace: dict[str, Any] = {
        "__module__": base.__module__,
        "__doc__": f"Rerank factory `{FACTORY_NAME}`: scores through a rerank-kit server (the shared client).",
    }
    if not hasattr(base, "_compute_rank"):
        namespace["similarity"] = _similarity
    return type("RerankKitRerank", (RerankKitModel, base), namespace)
