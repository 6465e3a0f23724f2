"""How RAGFlow and Dify blend rerank scores with their other scores, reproduced for tuning and tests.

Pure Python (no numpy) so it ships with the light client. Each function names the platform source it
reproduces; the tests recompute every formula by hand.

Sources (read from infiniflow/ragflow and langgenius/dify):
- RAGFlow `rag/nlp/search.py`: `Dealer.rerank_by_model` (the blend), `Dealer._rerank_window` and
  `Dealer.retrieval` (candidate window, `post_threshold`, stable sort, page slice).
- RAGFlow `rag/llm/rerank_model.py`: `Base._normalize_rank` (v0.26+).
- Dify `api/core/rag/rerank/weight_rerank.py` (`WeightRerankRunner.run`),
  `api/core/rag/rerank/rerank_model.py` (`RerankModelRunner.run`),
  `api/core/rag/data_post_processor/data_post_processor.py` (which runner a rerank mode uses) and
  `web/models/datasets.ts` (`DEFAULT_WEIGHTED_SCORE`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

from rerank_kit.scores import ranking

__all__ = [
    "DIFY_DEFAULT_VECTOR_WEIGHT",
    "RAGFLOW_DEFAULT_VECTOR_SIMILARITY_WEIGHT",
    "dify_rerank_model_select",
    "dify_weighted_score",
    "dify_weighted_select",
    "min_max",
    "ragflow_blend",
    "ragflow_normalize_rank",
    "ragflow_post_threshold",
    "ragflow_rerank_window",
    "ragflow_retrieval_page",
    "reciprocal_rank_fusion",
]

# RAGFlow chat assistant / `Dealer.retrieval` default `vector_similarity_weight`.
RAGFLOW_DEFAULT_VECTOR_SIMILARITY_WEIGHT = 0.3
# Dify hybrid search default (`DEFAULT_WEIGHTED_SCORE.other`: semantic 0.7, keyword 0.3).
DIFY_DEFAULT_VECTOR_WEIGHT = 0.7

# `Base._normalize_rank` treats a batch whose spread is below this as flat.
_RAGFLOW_FLAT_SPREAD = 1e-3


def min_max(scores: Sequence[float]) -> list[float]:
    """Min-max onto [0, 1]; a flat batch (no spread) has no relative signal and maps to zeros."""
    if not scores:
        return []
    low, high = min(scores), max(scores)
    if high == low:
        return [0.0] * len(scores)
    return [(score - low) / (high - low) for score in scores]


def ragflow_normalize_rank(scores: Sequence[float]) -> list[float]:
    """RAGFlow `rag/llm/rerank_model.py` `Base._normalize_rank` (v0.26+), applied to every reranker's output.

    Scores already inside [0, 1] are returned unchanged; otherwise a batch with a spread of at least 1e-3
    is min-max scaled, and a flatter batch (one candidate, or near-equal scores) is clipped to [0, 1].
    """
    values = [float(score) for score in scores]
    if not values:
        return []
    low, high = min(values), max(values)
    if low >= 0.0 and high <= 1.0:
        return values
    if high - low < _RAGFLOW_FLAT_SPREAD:
        return [min(1.0, max(0.0, value)) for value in values]
    return [(value - low) / (high - low) for value in values]


def ragflow_blend(tksim: Sequence[float], vtsim: Sequence[float], vector_similarity_weight: float,
                  rank_fea: Sequence[float] | None = None, *, pre_v023: bool = False) -> list[float]:
    """RAGFlow `rag/nlp/search.py` `Dealer.rerank_by_model`: the score that ranks and thresholds chunks.

    `tkweight = 1 - vector_similarity_weight`, `vtweight = vector_similarity_weight` (`Dealer.retrieval`);
    `tksim` is the keyword similarity, `vtsim` the (normalised) rerank score, `rank_fea` the tag-feature
    cosine x 10 plus the chunk's pagerank (0 when absent). Current form:
    `tkweight * tksim + vtweight * vtsim + rank_fea`; up to v0.22 it was
    `tkweight * (tksim + rank_fea) + vtweight * vtsim`.
    """
    if len(tksim) != len(vtsim) or (rank_fea is not None and len(rank_fea) != len(tksim)):
        raise ValueError("tksim, vtsim and rank_fea must have one value per chunk")
    tkweight, vtweight = 1.0 - vector_similarity_weight, vector_similarity_weight
    features = rank_fea if rank_fea is not None else [0.0] * len(tksim)
    if pre_v023:
        return [tkweight * (tk + fea) + vtweight * vt for tk, vt, fea in zip(tksim, vtsim, features, strict=True)]
    return [tkweight * tk + vtweight * vt + fea for tk, vt, fea in zip(tksim, vtsim, features, strict=True)]


def ragflow_rerank_window(page_size: int, top: int = 0) -> int:
    """RAGFlow `rag/nlp/search.py` `Dealer._rerank_window`: how many candidates one similarity() call scores.

    `retrieval` passes `top` only when a rerank model is set (else 0). A page size of 1 or less gets
    min(30, top) (or 30); otherwise ceil(64 / page_size) pages, capped at ceil(top / page_size) pages,
    so the window is always a whole number of pages: 66 for page_size 6, 64 for page_size 8.
    """
    if page_size <= 1:
        return min(30, top) if top > 0 else 30
    window = math.ceil(64 / page_size) * page_size
    if top > 0:
        window = min(window, math.ceil(top / page_size) * page_size)
    return window


def ragflow_post_threshold(similarity_threshold: float, vector_similarity_weight: float, *,
                           doc_ids_given: bool = False) -> float:
    """RAGFlow `Dealer.retrieval`: the threshold applied to blended scores.

    It is 0 when `vector_similarity_weight <= 0` (keyword-only scores) or when explicit `doc_ids` filter
    the search; otherwise `similarity_threshold`.
    """
    if vector_similarity_weight <= 0 or doc_ids_given:
        return 0.0
    return similarity_threshold


def ragflow_retrieval_page(similarities: Sequence[float], *, similarity_threshold: float,
                           vector_similarity_weight: float, page: int = 1, page_size: int,
                           top: int = 0, doc_ids_given: bool = False) -> list[int]:
    """RAGFlow `Dealer.retrieval`: indices of the chunks on `page` from one window's blended scores.

    Stable sort by score descending, keep scores >= the post threshold, then slice the page inside the
    window: `begin = ((page - 1) * page_size) % window`.
    """
    threshold = ragflow_post_threshold(similarity_threshold, vector_similarity_weight, doc_ids_given=doc_ids_given)
    valid = [i for i in ranking(similarities) if similarities[i] >= threshold]
    begin = ((max(page, 1) - 1) * page_size) % ragflow_rerank_window(page_size, top)
    return valid[begin:begin + page_size]


def dify_weighted_score(vector_scores: Sequence[float], keyword_scores: Sequence[float],
                        vector_weight: float = DIFY_DEFAULT_VECTOR_WEIGHT,
                        keyword_weight: float | None = None) -> list[float]:
    """Dify `weight_rerank.py` `WeightRerankRunner.run`: `vector_weight * vector + keyword_weight * keyword`.

    Dify's UI keeps the two weights summing to 1, so `keyword_weight` defaults to `1 - vector_weight`.
    """
    if len(vector_scores) != len(keyword_scores):
        raise ValueError("vector_scores and keyword_scores must have one value per document")
    keyword = 1.0 - vector_weight if keyword_weight is None else keyword_weight
    return [vector_weight * vec + keyword * kw for vec, kw in zip(vector_scores, keyword_scores, strict=True)]


def _top(ranked: list[tuple[int, float]], top_n: int | None) -> list[tuple[int, float]]:
    ranked.sort(key=lambda pair: -pair[1])
    return ranked[:top_n] if top_n else ranked


def dify_weighted_select(scores: Sequence[float], score_threshold: float | None = None,
                         top_n: int | None = None) -> list[tuple[int, float]]:
    """Dify weighted-score mode (`WeightRerankRunner.run`): threshold, then sort, then top_n.

    A document is dropped only when `score_threshold` is truthy and `score < score_threshold`, so a
    threshold of 0 or None keeps everything; a falsy `top_n` keeps all. Returns (index, score) pairs.
    """
    kept = [(i, s) for i, s in enumerate(scores) if not (score_threshold and s < score_threshold)]
    return _top(kept, top_n)


def dify_rerank_model_select(scores: Sequence[float], score_threshold: float | None = None,
                             top_n: int | None = None) -> list[tuple[int, float]]:
    """Dify rerank-model mode (`RerankModelRunner.run`): keep `score >= score_threshold`, sort, then top_n.

    Unlike the weighted mode the test is `score_threshold is None or score >= score_threshold`, so a
    threshold of 0.0 still drops negative scores (raw logits). Returns (index, score) pairs.
    """
    kept = [(i, s) for i, s in enumerate(scores) if score_threshold is None or s >= score_threshold]
    return _top(kept, top_n)


def reciprocal_rank_fusion(rankings: Sequence[Sequence[Hashable]], *, k: int = 60,
                           weights: Sequence[float] | None = None) -> list[tuple[Hashable, float]]:
    """Reciprocal rank fusion (Cormack et al., 2009): score(d) = sum_i w_i / (k + rank_i(d)), ranks from 1.

    `rankings` are lists of ids, best first; an id missing from a list adds nothing for it. Returns
    (id, score) pairs by score descending; ties keep first-seen order.
    """
    if weights is not None and len(weights) != len(rankings):
        raise ValueError("one weight per ranking")
    fused: dict[Hashable, float] = {}
    for position, ranked in enumerate(rankings):
        weight = 1.0 if weights is None else weights[position]
        for rank, item in enumerate(ranked, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    return sorted(fused.items(), key=lambda pair: -pair[1])
