"""One rule for which served model a name means (rerank_kit.names), used by the server's routing, the client's
checks and the RAGFlow class: a name the client accepts is one the server serves."""

from __future__ import annotations

import pytest

from local_server.registry import ModelNotFoundError, ServedModel, ServedModels
from local_server.settings import Settings
from rerank_kit.names import pick, same_model

SERVED = [("bge-reranker-v2-m3", ["/models/bge-reranker-v2-m3"]), ("minilm", ["/models/ms-marco-MiniLM-L-6-v2"])]


@pytest.mark.parametrize(("requested", "expected"), [
    ("bge-reranker-v2-m3", "bge-reranker-v2-m3"),
    ("/models/bge-reranker-v2-m3", "bge-reranker-v2-m3"),  # an alias: the spec's path
    ("BAAI/bge-reranker-v2-m3", "bge-reranker-v2-m3"),  # the hub id of the folder served
    ("bge-reranker-v2-m3___VLLM", "bge-reranker-v2-m3"),  # RAGFlow's factory suffix
    ("cross-encoder/ms-marco-MiniLM-L-6-v2", "minilm"),
    ("MINILM", "minilm"),
    ("bge-reranker-base", None),
])
def test_pick(requested: str, expected: str | None) -> None:
    assert pick(requested, SERVED) == expected


def test_an_ambiguous_loose_match_picks_nothing() -> None:
    assert pick("org/model", [("a", ["/x/model"]), ("b", ["/y/model"])]) is None
    assert pick("a", [("a", ["/x/model"]), ("b", ["/y/model"])]) == "a"  # exact names still route


def test_every_name_the_client_accepts_the_server_routes() -> None:
    """The gap this closes: the client matched `BAAI/bge-reranker-v2-m3` to a served folder by its last path part
    while the server's routing refused it."""
    settings = Settings(offline=True)
    models = ServedModels(settings, [ServedModel(name, settings, "cross-encoder", aliases=frozenset(aliases))
                                     for name, aliases in SERVED], strict=True)
    for requested in ("BAAI/bge-reranker-v2-m3", "bge-reranker-v2-m3___OpenAI-API", "Bge-Reranker-V2-M3"):
        assert any(same_model(requested, name) for name, _ in SERVED)
        assert models.get(requested).name == "bge-reranker-v2-m3"
    with pytest.raises(ModelNotFoundError):
        models.get("BAAI/bge-reranker-base")


@pytest.mark.parametrize(("requested", "served", "same"), [
    ("BAAI/bge-reranker-base", "BAAI/bge-reranker-base", True),
    ("bge-reranker-base", "BAAI/bge-reranker-base", True),
    ("BGE-Reranker-Base", "/models/bge-reranker-base/", True),
    ("baai/bge-reranker-v2-m3", "BAAI/bge-reranker-base", False),
    ("BAAI/bge-reranker-base___OpenAI-API", "bge-reranker-base", True),
])
def test_model_matching(requested: str, served: str, same: bool) -> None:
    assert same_model(requested, served) is same
