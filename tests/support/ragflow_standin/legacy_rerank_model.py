# Stand-in for infiniflow/ragflow rag/llm/rerank_model.py before v0.26 (the v0.22 form): `Base` has no
# scoring logic, and every provider overrides `similarity(query, texts) -> (np.ndarray, token_count)`
# itself (up to v0.21 Base also had a `total_token_count(resp)` helper). Our own code; the installer
# tests copy it over the tree's rag/llm/rerank_model.py to get a v0.22-shaped tree.
# RAGFlow's shapes, kept as they are: an ABC without abstract methods, a list-valued _FACTORY_NAME.
# ruff: noqa: B024, B027, RUF012
from abc import ABC


class Base(ABC):
    def __init__(self, key, model_name, **kwargs):
        pass

    def similarity(self, query: str, texts: list):
        raise NotImplementedError("Please implement encode method!")


class StandInListFactoryRerank(Base):
    """Stands for a built-in provider registered under several names (RAGFlow's CoHereRerank)."""

    _FACTORY_NAME = ["Cohere", "VLLM"]

    def __init__(self, key, model_name, base_url=None):
        self.model_name = model_name

    def similarity(self, query: str, texts: list):
        raise NotImplementedError("stand-in: the Cohere call is not reproduced")
