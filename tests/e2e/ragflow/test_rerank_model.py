"""The rerank-kit RAGFlow class, used the way RAGFlow uses it, on v0.22- and v0.26+-shaped stand-ins.

Each stand-in tree is patched by the installer and imported, so the class is found by RAGFlow's own
registration scan (`RerankModel[factory]`), then called against a live rerank-kit server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import numpy as np
import pytest

from ragflow_integration.rerank_model import BASE_URL_ENV, FACTORY_NAME
from rerank_kit.client import RerankClient
from rerank_kit.errors import AuthError, ConnectionFailedError
from tests.support.ragflow_standin.harness import VERSIONS, counting_proxy, imported_ragflow, install_ragflow, make_tree
from tests.support.server_process import free_port, running_server

MODEL = "BAAI/bge-reranker-v2-m3"
QUERY = "how do I reset my password"
TEXTS = [
    "to reset your password open settings and choose reset password",
    "the cafeteria serves lunch from noon",
    "password rules: at least twelve characters",
    "quarterly revenue grew by four percent",
]


@pytest.fixture(scope="module", params=VERSIONS)
def ragflow(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """`rag.llm` of an installed stand-in tree of the given RAGFlow version."""
    root = make_tree(tmp_path_factory.mktemp("ragflow") / "tree", request.param)
    assert install_ragflow(root) == 0
    with imported_ragflow(root) as rag_llm:
        yield rag_llm


def test_the_registration_scan_finds_the_class(ragflow: ModuleType) -> None:
    cls = ragflow.RerankModel[FACTORY_NAME]
    assert cls is ragflow.rerank_model.RerankKitRerank
    assert issubclass(cls, ragflow.rerank_model.Base)
    assert ragflow.RerankModel["Cohere"] is ragflow.RerankModel["VLLM"]  # RAGFlow's own classes still there


def test_similarity_follows_the_base_contract(ragflow: ModuleType) -> None:
    """v0.26+: Base.similarity drives `_compute_rank` (providers must not override it); v0.22: our own."""
    cls = ragflow.RerankModel[FACTORY_NAME]
    base = ragflow.rerank_model.Base
    assert "_compute_rank" in vars(cls.__mro__[1])
    if hasattr(base, "_compute_rank"):
        assert "similarity" not in vars(cls) and cls.similarity is base.similarity
    else:
        assert "similarity" in vars(cls)


def test_add_model_check_passes(ragflow: ModuleType, live_server: str) -> None:
    """llm_app.add_llm: positional construction, then a one-text similarity; fails on empty or 0 tokens."""
    model = ragflow.RerankModel[FACTORY_NAME]("", MODEL, base_url=live_server)
    arr, token_count = model.similarity("What's the weather?", ["Is it sunny today?"])
    assert len(arr) == 1 and token_count > 0
    assert 0.0 <= arr[0] <= 1.0


def test_keyword_construction_and_model_suffix(ragflow: ModuleType, live_server: str) -> None:
    """v0.25 built models with keywords and appended `___<Factory>` to local model names."""
    model = ragflow.RerankModel[FACTORY_NAME](key="x", model_name=f"{MODEL}___{FACTORY_NAME}", base_url=live_server)
    assert model.model_name == MODEL
    arr, token_count = model.similarity(QUERY, TEXTS)
    assert arr.shape == (len(TEXTS),) and token_count > 0


def test_scores_are_the_servers_calibrated_scores_in_input_order(ragflow: ModuleType, live_server: str) -> None:
    """RAGFlow's min-max must leave them alone: equal to what the server gives, all inside [0, 1]."""
    arr, _ = ragflow.RerankModel[FACTORY_NAME]("", MODEL, base_url=live_server).similarity(QUERY, TEXTS)
    with RerankClient(live_server) as client:
        direct = {r.index: r.relevance_score for r in client.rerank(QUERY, TEXTS).results}
    assert isinstance(arr, np.ndarray) and arr.dtype == float
    assert np.allclose(arr, [direct[i] for i in range(len(TEXTS))])
    assert np.all((arr >= 0.0) & (arr <= 1.0))
    assert not (np.isclose(arr.min(), 0.0) and np.isclose(arr.max(), 1.0)), "looks min-max rescaled"


def test_a_retrieval_window_goes_in_one_request(ragflow: ModuleType, live_server: str) -> None:
    """rerank_by_model scores ~64 tokenized chunks in one similarity() call; one POST carries them all."""
    chunks = [f"chunk {i} : password reset step {i % 7} , see section {i} of the user guide" for i in range(64)]
    with counting_proxy(live_server) as (url, log):
        arr, token_count = ragflow.RerankModel[FACTORY_NAME]("", MODEL, base_url=url).similarity(QUERY, chunks)
    assert arr.shape == (64,) and token_count > 0
    assert len(log.posts) == 1, log.posts


def test_empty_input_returns_zeros_without_a_request(ragflow: ModuleType, live_server: str) -> None:
    with counting_proxy(live_server) as (url, log):
        model = ragflow.RerankModel[FACTORY_NAME]("", MODEL, base_url=url)
        no_texts, no_texts_tokens = model.similarity(QUERY, [])
        no_query, no_query_tokens = model.similarity("", ["a chunk"])
    assert no_texts.shape == (0,) and no_texts_tokens == 0
    assert np.array_equal(no_query, [0.0]) and no_query_tokens == 0
    assert log.posts == []


def test_a_server_that_is_down_raises_with_the_clients_hint(ragflow: ModuleType) -> None:
    """RAGFlow shows str(exception) in the add-model dialog: it must say what to do."""
    model = ragflow.RerankModel[FACTORY_NAME]("", MODEL, base_url=f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(ConnectionFailedError) as caught:
        model.similarity("What's the weather?", ["Is it sunny today?"])
    assert time.monotonic() - started < 10  # retries with backoff, far inside the client's 60 s timeout
    assert caught.value.hint and caught.value.hint in str(caught.value)
    assert "rerank-kit serve" in str(caught.value)


def test_the_base_url_defaults_from_the_environment(
    ragflow: ModuleType, live_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Callers that pass no base_url (RAGFlow's older tenant code paths) reach RERANK_KIT_BASE_URL."""
    monkeypatch.setenv(BASE_URL_ENV, live_server)
    arr, token_count = ragflow.RerankModel[FACTORY_NAME]("", MODEL).similarity(QUERY, TEXTS[:2])
    assert arr.shape == (2,) and token_count > 0


def test_api_key_is_sent_and_a_wrong_one_explains_itself(tmp_path: Path, tiny_model_dir: Path) -> None:
    root = make_tree(tmp_path / "tree")
    assert install_ragflow(root) == 0
    with running_server(tiny_model_dir, api_key="s3cret") as url, imported_ragflow(root) as rag_llm:
        cls = rag_llm.RerankModel[FACTORY_NAME]
        arr, _ = cls("s3cret", MODEL, base_url=url).similarity(QUERY, TEXTS)
        assert arr.shape == (len(TEXTS),)
        with pytest.raises(AuthError) as caught:
            cls("not-the-key-7731", MODEL, base_url=url).similarity(QUERY, TEXTS)
    assert caught.value.hint and caught.value.hint in str(caught.value)
    assert "not-the-key-7731" not in str(caught.value)  # never echo keys


def test_each_served_model_is_reached_by_its_name(ragflow: ModuleType, multi_model_server: str) -> None:
    """A server serving several models: the RAGFlow model's name (suffixed as v0.25 does) picks one."""
    for name in ("minilm", "qwen3"):
        model = ragflow.RerankModel[FACTORY_NAME]("", f"{name}___{FACTORY_NAME}", base_url=multi_model_server)
        arr, _ = model.similarity(QUERY, TEXTS)
        direct = httpx.post(f"{multi_model_server}/rerank", json={"model": name, "query": QUERY, "documents": TEXTS})
        assert np.allclose(arr, [r["relevance_score"] for r in sorted(direct.json()["results"],
                                                                       key=lambda r: r["index"])]), name
