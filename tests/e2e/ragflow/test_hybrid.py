"""RAGFlow's `rerank_by_model` blend, computed with rerank_kit.hybrid, on the class's live scores.

RAGFlow (rag/nlp/search.py, Dealer.rerank_by_model) computes, per chunk of the rerank window,
`tkweight * tksim + vtweight * vtsim + rank_fea` (up to v0.22: `tkweight * (tksim + rank_fea) + ...`)
with numpy, `vtsim` being the rerank class's `similarity()` output. The numpy lines below are that
formula as RAGFlow writes it; rerank_kit.hybrid must give the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import numpy as np
import pytest

from ragflow_integration.rerank_model import FACTORY_NAME
from rerank_kit.client import RerankClient
from rerank_kit.hybrid import (
    RAGFLOW_DEFAULT_VECTOR_SIMILARITY_WEIGHT,
    ragflow_blend,
    ragflow_normalize_rank,
    ragflow_rerank_window,
)
from tests.support.ragflow_standin.harness import imported_ragflow, install_ragflow, make_tree

QUERY = "reset password"
CHAT_PAGE_SIZE = 6  # chat assistant top_n


@pytest.fixture(scope="module")
def ragflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    root = make_tree(tmp_path_factory.mktemp("ragflow") / "tree")
    assert install_ragflow(root) == 0
    with imported_ragflow(root) as rag_llm:
        yield rag_llm


@pytest.fixture(scope="module")
def window(ragflow: ModuleType, live_server: str) -> tuple[list[str], np.ndarray]:
    """A chat retrieval's window of tokenized chunks (66 for top_n 6) and their scores from one call."""
    size = ragflow_rerank_window(CHAT_PAGE_SIZE, top=1024)
    chunks = [f"password reset step {i % 5} account setting {i}" if i % 3 == 0 else f"lunch menu item {i}"
              for i in range(size)]
    vtsim, token_count = ragflow.RerankModel[FACTORY_NAME]("", "bge", base_url=live_server).similarity(QUERY, chunks)
    assert token_count > 0
    return chunks, vtsim


def test_the_window_is_what_ragflow_sends(window: tuple[list[str], np.ndarray]) -> None:
    chunks, vtsim = window
    assert len(chunks) == 66 and vtsim.shape == (66,)


def test_calibrated_scores_pass_ragflows_normalisation_unchanged(window: tuple[list[str], np.ndarray],
                                                                 live_server: str) -> None:
    chunks, vtsim = window
    with RerankClient(live_server) as client:
        direct = {r.index: r.relevance_score for r in client.rerank(QUERY, chunks).results}
    served = [direct[i] for i in range(len(chunks))]
    assert np.allclose(vtsim, served)
    assert np.allclose(ragflow_normalize_rank(served), served)


@pytest.mark.parametrize("vector_similarity_weight", [RAGFLOW_DEFAULT_VECTOR_SIMILARITY_WEIGHT, 0.7, 1.0])
def test_blend_matches_ragflows_formula(window: tuple[list[str], np.ndarray], vector_similarity_weight: float) -> None:
    _, vtsim = window
    rng = np.random.default_rng(7)
    tksim = rng.uniform(0.0, 1.0, vtsim.size)  # keyword similarity: an input, computed by RAGFlow
    rank_fea = rng.uniform(0.0, 0.5, vtsim.size)  # tag-feature cosine x 10 + pagerank
    tkweight, vtweight = 1 - vector_similarity_weight, vector_similarity_weight

    current = tkweight * np.array(tksim) + vtweight * vtsim + rank_fea
    up_to_v022 = tkweight * (np.array(tksim) + rank_fea) + vtweight * vtsim

    assert np.allclose(ragflow_blend(tksim.tolist(), vtsim.tolist(), vector_similarity_weight,
                                     rank_fea.tolist()), current)
    assert np.allclose(ragflow_blend(tksim.tolist(), vtsim.tolist(), vector_similarity_weight,
                                     rank_fea.tolist(), pre_v023=True), up_to_v022)

