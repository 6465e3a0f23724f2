"""Wire models of every rerank dialect rerank-kit speaks, shared by the client and the server.

Two request families exist in the wild:
- `documents` bodies: native rerank-kit, Cohere v1/v2, Jina, Xinference, GPUStack, vLLM, Infinity and
  the OpenAI-compatible proxies of Dify and RAGFlow -> `RerankRequest` / `RerankResponse`;
- `texts` bodies: Hugging Face text-embeddings-inference (TEI) -> `TEIRerankRequest` / `list[TEIRankedText]`;
and Ollama's `POST /api/rerank` (documents as plain strings both ways) -> `OllamaRerankRequest` /
`OllamaRerankResponse`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, RootModel, StrictStr, field_validator


class _Wire(BaseModel):
    """Ignore unknown fields: every client sends a few of its own (rank_fields, return_len, ...)."""

    model_config = ConfigDict(extra="ignore")


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a non-empty string")
    return value


class DocumentObject(_Wire):
    """Cohere v1 / Jina accept `{"text": ...}` objects as well as plain strings."""

    text: StrictStr


DocumentIn = StrictStr | DocumentObject


def document_text(document: str | DocumentObject) -> str:
    return document if isinstance(document, str) else document.text


# The non-blank rule, for the OpenAPI document; `_non_blank` enforces it with a clearer message.
_NON_BLANK = {"pattern": r"\S", "description": "Must contain a non-whitespace character."}


_INSTRUCTION = ("Task instruction for the model families that take one (llm, llm-layerwise, llm-lightweight: the "
                "prompt; qwen3: <Instruct>); cross-encoders ignore it. Unset: the model's default.")


class RerankRequest(_Wire):
    """A `documents` body: native, Cohere v1/v2, Jina, Xinference, GPUStack, OpenAI-compatible."""

    model: str | None = None
    query: StrictStr = Field(json_schema_extra=_NON_BLANK)
    documents: list[DocumentIn] = Field(min_length=1)
    top_n: int | None = Field(default=None, description="Keep the best n; unset, 0 or negative keeps all.")
    return_documents: bool | None = Field(default=None, description="Echo each document's text.")
    raw_scores: bool = Field(default=False, description="Return logits instead of sigmoid scores in [0, 1].")
    max_chunks_per_doc: int | None = Field(
        default=None, ge=1, description="Cohere v1: score a long document by its best of up to n windows."
    )
    max_tokens_per_doc: int | None = Field(
        default=None, ge=1, description="Cohere v2: truncate each document to this many tokens."
    )
    instruction: str | None = Field(default=None, description=_INSTRUCTION)

    _query_not_blank = field_validator("query")(_non_blank)

    def texts(self) -> list[str]:
        return [document_text(d) for d in self.documents]


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class TEIRerankRequest(_Wire):
    """Hugging Face text-embeddings-inference `POST /rerank` body."""

    model: str | None = None
    query: StrictStr = Field(json_schema_extra=_NON_BLANK)
    texts: list[StrictStr] = Field(min_length=1)
    truncate: bool | None = Field(default=None, description="null or true: cut to max length; false: 422.")
    truncation_direction: Annotated[Literal["right", "left"], BeforeValidator(_lower)] = "right"
    raw_scores: bool = False
    return_text: bool = False
    instruction: str | None = Field(default=None, description=_INSTRUCTION)

    _query_not_blank = field_validator("query")(_non_blank)


class OllamaRerankRequest(_Wire):
    """Ollama's `POST /api/rerank` body, as Dify's Ollama plugin sends it."""

    model: str | None = None
    query: StrictStr = Field(json_schema_extra=_NON_BLANK)
    documents: list[StrictStr] = Field(min_length=1)
    top_n: int | None = Field(default=None, description="Keep the best n; unset, 0 or negative keeps all.")
    return_documents: bool = Field(default=False, description="Echo each document's text (a plain string).")
    raw_scores: bool = Field(default=False, description="Return logits instead of sigmoid scores in [0, 1].")
    instruction: str | None = Field(default=None, description=_INSTRUCTION)

    _query_not_blank = field_validator("query")(_non_blank)


class ResultDocument(_Wire):
    text: str


class RerankResult(_Wire):
    index: int
    relevance_score: float
    document: ResultDocument | None = None

    @property
    def score(self) -> float:
        return self.relevance_score


class Usage(_Wire):
    prompt_tokens: int = 0
    total_tokens: int = 0


class ApiVersion(_Wire):
    version: str = "1"


class BilledUnits(_Wire):
    search_units: int = 1


class TokenCounts(_Wire):
    input_tokens: int = 0
    output_tokens: int = 0


class Meta(_Wire):
    """Cohere's `meta` (api_version, billed_units) plus Xinference's `tokens`."""

    api_version: ApiVersion = ApiVersion()
    billed_units: BilledUnits = BilledUnits()
    tokens: TokenCounts = TokenCounts()


class RerankResponse(_Wire):
    """`{id, model, results, usage, meta}`: what Cohere, Jina, Infinity and Xinference clients all read."""

    id: str = ""
    object: str = "rerank"
    model: str = ""
    results: list[RerankResult]
    usage: Usage = Usage()
    meta: Meta | None = None


class TEIRankedText(_Wire):
    """One element of TEI's bare-list `/rerank` response."""

    index: int
    score: float
    text: str | None = None


class TEIRankedList(RootModel[list[TEIRankedText]]):
    """TEI's `/rerank` answer: a bare list."""


class OllamaRerankResult(_Wire):
    index: int
    relevance_score: float
    document: str | None = None


class OllamaRerankResponse(_Wire):
    """`{model, results: [{index, relevance_score, document?}]}`, best first; `document` a plain string."""

    model: str
    results: list[OllamaRerankResult]


class ModelCard(_Wire):
    """One entry of `GET /v1/models` (OpenAI's shape, plus what Xinference and Infinity clients read)."""

    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = "rerank-kit"
    type: str | None = None
    max_input_length: int | None = None
    kind: str | None = None  # rerank-kit: the model family (cross-encoder, llm, qwen3, ...)
    backend_note: str | None = None  # rerank-kit: why it is served otherwise than asked (int8 refused on this CPU)


class ModelList(_Wire):
    object: str = "list"
    data: list[ModelCard]


class ErrorBody(_Wire):
    """Every error response: `{"error": message, "error_type": kind}` (TEI's shape)."""

    error: str
    error_type: str


class ServerInfo(_Wire):
    """`GET /info`: TEI's fields (Dify's and RAGFlow's TEI factories read them) plus rerank-kit's limits."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model_id: str
    model_sha: str | None = None
    model_dtype: str = "float32"
    model_type: dict[str, Any] = Field(default_factory=lambda: {"reranker": {}})
    max_concurrent_requests: int = 512
    max_input_length: int = 512
    max_batch_tokens: int = 16384
    max_client_batch_size: int = 1000
    auto_truncate: bool = True
    version: str = ""
    server: str | None = None
    max_docs: int | None = None
    query_max_length: int | None = None
    device: str | None = None
    score_transform: str | None = None
    kind: str | None = None
    models: list[str] | None = None  # rerank-kit: every served model's name, the default (model_id) first
    backend: str | None = None  # rerank-kit: what scores the default model (onnx, torch)
    backend_note: str | None = None  # rerank-kit: why it is served otherwise than asked (int8 refused on this CPU)

    @property
    def is_reranker(self) -> bool:
        return "reranker" in self.model_type
