"""Every hybrid-score formula against numbers computed by hand (the arithmetic is in the comments).

Sources reproduced (infiniflow/ragflow, langgenius/dify):
- RAGFlow rag/nlp/search.py: Dealer.rerank_by_model (blend), Dealer._rerank_window, Dealer.retrieval
  (post_threshold, stable sort, page slice);
- RAGFlow rag/llm/rerank_model.py: Base._normalize_rank;
- Dify api/core/rag/rerank/weight_rerank.py (WeightRerankRunner.run) and rerank_model.py
  (RerankModelRunner.run); web/models/datasets.ts DEFAULT_WEIGHTED_SCORE.
"""

from __future__ import annotations

import pytest

from rerank_kit.hybrid import (
    DIFY_DEFAULT_VECTOR_WEIGHT,
    RAGFLOW_DEFAULT_VECTOR_SIMILARITY_WEIGHT,
    dify_rerank_model_select,
    dify_weighted_score,
    dify_weighted_select,
    min_max,
    ragflow_blend,
    ragflow_normalize_rank,
    ragflow_post_threshold,
    ragflow_rerank_window,
    ragflow_retrieval_page,
    reciprocal_rank_fusion,
)
from rerank_kit.scores import sigmoid


def test_platform_defaults() -> None:
    # RAGFlow Dealer.retrieval / chat vector_similarity_weight=0.3; Dify DEFAULT_WEIGHTED_SCORE.other semantic 0.7
    assert (RAGFLOW_DEFAULT_VECTOR_SIMILARITY_WEIGHT, DIFY_DEFAULT_VECTOR_WEIGHT) == (0.3, 0.7)


@pytest.mark.parametrize(("logit", "expected"), [
    (0.0, 0.5),
    (2.0, 0.8807970779778823),  # 1 / (1 + e^-2) = 1 / 1.1353352832366128
    (-2.0, 0.11920292202211755),  # e^-2 / (1 + e^-2) = 0.1353352832366127 / 1.1353352832366128
    (1000.0, 1.0),
    (-1000.0, 0.0),  # no OverflowError from e^1000
])
def test_sigmoid(logit: float, expected: float) -> None:
    assert sigmoid(logit) == pytest.approx(expected, abs=1e-15)


def test_min_max() -> None:
    assert min_max([2.0, 4.0, 6.0]) == [0.0, 0.5, 1.0]  # (x - 2) / (6 - 2)
    assert min_max([-1.0, 1.0, 0.5]) == [0.0, 1.0, 0.75]  # (0.5 + 1) / 2
    assert min_max([3.0, 3.0]) == [0.0, 0.0]  # flat: no relative signal
    assert min_max([]) == []


@pytest.mark.parametrize(("scores", "expected"), [
    ([0.2, 0.9], [0.2, 0.9]),  # already in [0, 1]: unchanged (threshold semantics kept)
    ([0.0, 1.0], [0.0, 1.0]),  # the bounds count as inside
    ([-2.0, 0.0, 2.0], [0.0, 0.5, 1.0]),  # min-max: (0 + 2) / 4
    ([1.5, 0.5], [1.0, 0.0]),  # above 1, spread 1: min-max
    ([3.0], [1.0]),  # one candidate: spread 0 < 1e-3, clipped, not zeroed
    ([-0.5], [0.0]),
    ([1.0004, 1.0001], [1.0, 1.0]),  # spread 0.0003 < 1e-3: clipped
    ([1.002, 1.0], [1.0, 0.0]),  # spread 0.002 >= 1e-3: min-max
    ([], []),
])
def test_ragflow_normalize_rank(scores: list[float], expected: list[float]) -> None:
    assert ragflow_normalize_rank(scores) == pytest.approx(expected)


def test_ragflow_blend_current_form() -> None:
    # w = 0.3 -> tkweight 0.7, vtweight 0.3
    # chunk 0: 0.7 * 0.5 + 0.3 * 0.8 + 0.0 = 0.35 + 0.24 = 0.59
    # chunk 1: 0.7 * 0.2 + 0.3 * 0.9 + 1.0 = 0.14 + 0.27 + 1.0 = 1.41
    assert ragflow_blend([0.5, 0.2], [0.8, 0.9], 0.3, [0.0, 1.0]) == pytest.approx([0.59, 1.41])
    assert ragflow_blend([0.5, 0.2], [0.8, 0.9], 0.3) == pytest.approx([0.59, 0.41])


def test_ragflow_blend_pre_v023_form() -> None:
    # tkweight * (tksim + rank_fea) + vtweight * vtsim
    # chunk 0: 0.7 * (0.5 + 0.0) + 0.3 * 0.8 = 0.59
    # chunk 1: 0.7 * (0.2 + 1.0) + 0.3 * 0.9 = 0.84 + 0.27 = 1.11
    assert ragflow_blend([0.5, 0.2], [0.8, 0.9], 0.3, [0.0, 1.0], pre_v023=True) == pytest.approx([0.59, 1.11])


def test_ragflow_blend_weight_extremes() -> None:
    assert ragflow_blend([0.5, 0.2], [0.8, 0.9], 0.0) == pytest.approx([0.5, 0.2])  # keyword only
    assert ragflow_blend([0.5, 0.2], [0.8, 0.9], 1.0) == pytest.approx([0.8, 0.9])  # rerank only


def test_ragflow_blend_needs_one_value_per_chunk() -> None:
    with pytest.raises(ValueError, match="one value per chunk"):
        ragflow_blend([0.5], [0.8, 0.9], 0.3)
    with pytest.raises(ValueError, match="one value per chunk"):
        ragflow_blend([0.5, 0.2], [0.8, 0.9], 0.3, [1.0])


@pytest.mark.parametrize(("page_size", "top", "window"), [
    (6, 1024, 66),  # chat top_n 6: ceil(64 / 6) = 11 pages -> 66; ceil(1024 / 6) * 6 = 1026 does not cap
    (8, 1024, 64),  # agent top_n 8: ceil(64 / 8) * 8
    (6, 0, 66),  # no rerank model: top not passed
    (10, 1024, 70),  # ceil(6.4) = 7 pages
    (10, 25, 30),  # capped by ceil(25 / 10) * 10 = 30
    (30, 1024, 90),  # ceil(64 / 30) = 3 pages
    (100, 50, 100),  # ceil(0.64) = 1 page, cap ceil(0.5) * 100 = 100
    (1, 0, 30),  # page_size <= 1: 30
    (1, 8, 8),  # ... or min(30, top)
    (0, 100, 30),
])
def test_ragflow_rerank_window(page_size: int, top: int, window: int) -> None:
    assert ragflow_rerank_window(page_size, top) == window


def test_ragflow_post_threshold() -> None:
    assert ragflow_post_threshold(0.2, 0.3) == 0.2
    assert ragflow_post_threshold(0.2, 0.0) == 0.0  # keyword-only scores: threshold not meaningful
    assert ragflow_post_threshold(0.2, 0.3, doc_ids_given=True) == 0.0  # explicit doc_ids bypass it


def test_ragflow_retrieval_page_threshold_stable_sort_and_slices() -> None:
    sims = [0.1, 0.5, 0.3, 0.5, 0.25]
    # stable descending order: 1 (0.5), 3 (0.5, tie keeps input order), 2 (0.3), 4 (0.25), 0 (0.1)
    # threshold 0.2 drops chunk 0; window(2, 0) = 64 so pages slice the valid list from 0, 2, 4
    page = {p: ragflow_retrieval_page(sims, similarity_threshold=0.2, vector_similarity_weight=0.3, page=p,
                                      page_size=2) for p in (1, 2, 3)}
    assert page == {1: [1, 3], 2: [2, 4], 3: []}
    keyword_only = ragflow_retrieval_page(sims, similarity_threshold=0.2, vector_similarity_weight=0.0, page=3,
                                          page_size=2)
    assert keyword_only == [0]


def test_ragflow_retrieval_page_restarts_in_each_window() -> None:
    # top 4 with page_size 2: window = min(64, ceil(4 / 2) * 2) = 4; page 3 -> (3 - 1) * 2 % 4 = 0,
    # the first page of the next block RAGFlow fetches (req page = 4 // 4 + 1 = 2)
    sims = [0.9, 0.8, 0.7, 0.6]
    assert ragflow_retrieval_page(sims, similarity_threshold=0.0, vector_similarity_weight=0.5, page=3,
                                  page_size=2, top=4) == [0, 1]


def test_dify_weighted_score() -> None:
    # default 0.7 / 0.3: 0.7 * 0.8 + 0.3 * 0.2 = 0.56 + 0.06 = 0.62; 0.7 * 0.4 + 0.3 * 0.9 = 0.28 + 0.27 = 0.55
    assert dify_weighted_score([0.8, 0.4], [0.2, 0.9]) == pytest.approx([0.62, 0.55])
    # 0.5 / 0.5: 0.5 * 0.8 + 0.5 * 0.2 = 0.5; 0.5 * 0.4 + 0.5 * 0.9 = 0.65
    assert dify_weighted_score([0.8, 0.4], [0.2, 0.9], 0.5) == pytest.approx([0.5, 0.65])
    # independent weights as stored in Weights(vector_setting, keyword_setting): 1.0 * 0.8 + 0.5 * 0.2 = 0.9
    assert dify_weighted_score([0.8], [0.2], 1.0, 0.5) == pytest.approx([0.9])
    with pytest.raises(ValueError, match="one value per document"):
        dify_weighted_score([0.8], [0.2, 0.3])


def test_dify_weighted_mode_threshold_then_top_n() -> None:
    scores = [0.62, 0.55, 0.3, 0.55]
    # `if score_threshold and score < score_threshold: continue` keeps 0.55 == threshold
    assert dify_weighted_select(scores, 0.55) == [(0, 0.62), (1, 0.55), (3, 0.55)]
    assert dify_weighted_select(scores, 0.55, top_n=2) == [(0, 0.62), (1, 0.55)]
    everything = [(0, 0.62), (1, 0.55), (3, 0.55), (2, 0.3)]
    assert dify_weighted_select(scores, 0.0) == everything  # falsy threshold keeps all
    assert dify_weighted_select(scores, None, top_n=0) == everything  # falsy top_n keeps all


def test_dify_rerank_model_mode_threshold_then_top_n() -> None:
    logits = [0.9, -0.2, 0.0, 0.4]
    # `score_threshold is None or score >= score_threshold`: 0.0 still drops the negative logit
    assert dify_rerank_model_select(logits, 0.0) == [(0, 0.9), (3, 0.4), (2, 0.0)]
    assert dify_weighted_select(logits, 0.0) == [(0, 0.9), (3, 0.4), (2, 0.0), (1, -0.2)]
    assert dify_rerank_model_select(logits, None) == [(0, 0.9), (3, 0.4), (2, 0.0), (1, -0.2)]
    assert dify_rerank_model_select(logits, 0.3, top_n=1) == [(0, 0.9)]


def test_reciprocal_rank_fusion() -> None:
    # k = 60: a 1/61; b 1/62 + 1/61; c 1/63 + 1/62; d 1/63
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "d"]])
    assert [item for item, _ in fused] == ["b", "c", "a", "d"]
    assert [score for _, score in fused] == pytest.approx([
        0.03252247488101534, 0.03200204813108039, 0.01639344262295082, 0.015873015873015872])


def test_weighted_reciprocal_rank_fusion() -> None:
    # k = 1, weights 2 and 1: a 2/2 = 1; b 2/3 + 1/2 = 1.1667; c 2/4 + 1/3 = 0.8333; d 1/4
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "d"]], k=1, weights=[2.0, 1.0])
    assert fused == [("b", pytest.approx(7 / 6)), ("a", pytest.approx(1.0)), ("c", pytest.approx(5 / 6)),
                     ("d", pytest.approx(0.25))]
    with pytest.raises(ValueError, match="one weight per ranking"):
        reciprocal_rank_fusion([["a"]], weights=[1.0, 2.0])
