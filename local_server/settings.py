"""Server settings, read from the environment (prefix RERANK_) and overridable by `rerank-kit serve` flags."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rerank_kit import DEFAULT_PORT


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RERANK_", env_file=None, protected_namespaces=())

    model: str = Field("BAAI/bge-reranker-v2-m3", description="Hub id or local folder of a cross-encoder.")
    served_model_name: str | None = Field(None, description="Model id reported to clients (default: folder name).")
    device: str = Field("auto", description="auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps.")
    fp16: bool | None = Field(None, description="Half precision; default on for CUDA only.")
    max_length: int = Field(512, ge=8, description="Max tokens of a (query, document) pair.")
    query_max_length: int | None = Field(None, ge=1, description="Max query tokens (default 3/4 of max_length).")
    max_batch_tokens: int | None = Field(
        None, ge=64, description="Padded-token budget of one forward pass (default 2048 on CPU, 16384 on GPU)."
    )
    max_batch_size: int = Field(32, ge=1, description="Max pairs in one forward pass.")
    max_wait_ms: float = Field(2.0, ge=0, description="How long a lone request waits for company to batch with.")
    max_docs: int = Field(1000, ge=1, description="Max documents per request (413 above).")
    max_queue_pairs: int = Field(20000, ge=1, description="Pairs waiting before new requests get 503.")
    max_request_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Max request body (413 above).")
    max_pairs_per_request: int = Field(
        4096, ge=1, description="Max (query, document window) pairs one request may create (413 above; "
                                "never more than max_queue_pairs).")
    max_chunks_per_doc: int = Field(32, ge=1, description="Max windows a request may ask per document (422 above).")
    min_window_tokens: int = Field(
        16, ge=1, description="Smallest document window when a request asks for several windows (422 below).")
    drain_seconds: float = Field(
        30.0, ge=0, description="On SIGTERM: time to finish in-flight requests; the rest get 503, then exit 0.")
    public_routes: Annotated[list[str], NoDecode] = Field(
        ["/health", "/info", "/v1/models", "/models"],
        description="Routes that need no API key when one is set (e.g. add /metrics for an open Prometheus scrape).")
    backend: Literal["torch", "onnx"] = Field("torch", description="torch, or onnx (opt-in fast CPU path).")
    onnx_quantize: Literal["none", "int8"] = Field("none", description="onnx backend: int8 dynamic quantisation.")
    threads: int | None = Field(None, ge=1, description="Intra-op threads for inference (default: all cores).")
    cache_dir: Path = Field(Path.home() / ".cache" / "rerank-kit", description="Where exported ONNX models go.")
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    api_key: SecretStr | None = Field(
        None, description="If set, every route but public_routes needs 'Authorization: Bearer KEY'.")
    offline: bool = Field(False, description="Never contact the Hugging Face Hub.")
    log_level: str = "info"

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: object) -> object:
        """`RERANK_API_KEY=` (as docker compose passes an unset variable) means no key."""
        return value or None

    @field_validator("public_routes", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """`RERANK_PUBLIC_ROUTES=/health,/metrics` (empty: every route needs the key)."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def effective_max_pairs_per_request(self) -> int:
        """A request larger than the whole queue could never be queued: the smaller limit applies."""
        return min(self.max_pairs_per_request, self.max_queue_pairs)

    @property
    def effective_query_max_length(self) -> int:
        """FlagReranker's rule: the query gets 3/4 of max_length unless set."""
        return self.query_max_length or self.max_length * 3 // 4

    @property
    def model_id(self) -> str:
        """The id reported in responses, /info and /v1/models."""
        if self.served_model_name:
            return self.served_model_name
        local = Path(self.model).expanduser()
        return local.name if local.is_dir() else self.model
