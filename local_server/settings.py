"""Server settings, read from the environment (prefix RERANK_) and overridable by `rerank-kit serve` flags,
and the per-model specs of a config file (RERANK_CONFIG) that override them model by model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rerank_kit import DEFAULT_PORT

# The model families (local_server.families); unset, the family is detected from the model's config.
FamilyName = Literal["cross-encoder", "llm", "llm-layerwise", "llm-lightweight", "qwen3"]


def _one_layer(value: object) -> object:
    """28 or [28]. FlagEmbedding also takes several layers (a list of scores for each); a server answers one."""
    if isinstance(value, int):
        return [value]
    if isinstance(value, list) and len(value) != 1:
        raise ValueError("give one layer, e.g. [28]: the server answers one score per document")
    return value


CutoffLayers = Annotated[list[int], BeforeValidator(_one_layer)]


def _family_was_kind(data: object) -> object:
    """The setting was called `kind` (RERANK_KIND, `kind:` in a config file) before it was `family`."""
    if isinstance(data, dict) and "kind" in data:
        legacy = data["kind"]
        data = {key: value for key, value in data.items() if key != "kind"}
        data.setdefault("family", legacy)
    return data


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RERANK_", env_file=None, protected_namespaces=())

    config: Path | None = Field(None, description="YAML file listing the served models (overrides RERANK_MODEL).")
    model: str = Field("BAAI/bge-reranker-v2-m3", description="Hub id or local folder of a reranker.")
    family: FamilyName | None = Field(
        None, description="Model family (default: detected from the model's config; RERANK_KIND is read too).")
    instruction: str | None = Field(
        None, description="Default instruction of the families that take one (the llm families: the prompt; qwen3).")
    trust_remote_code: bool = Field(False, description="Run the model's own code (jina-reranker-v2, gte, ...).")
    cutoff_layers: CutoffLayers | None = Field(
        None, description="llm-layerwise, llm-lightweight: the one layer whose head scores, e.g. [28] "
                          "(default: the last); fewer layers run faster and score a little differently.")
    compress_layers: list[int] = Field(
        [8], description="llm-lightweight: the layers before which the passage is compressed.")
    compress_ratio: Literal[1, 2, 4, 8] = Field(
        1, description="llm-lightweight: passage positions averaged into one at each compress layer (1: none).")
    lazy_load: bool = Field(False, description="Load each model on its first request instead of at start.")
    idle_unload_s: float | None = Field(
        None, gt=0, description="Unload a model idle this long (seconds); it loads again on its next request.")
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
    backend: Literal["auto", "torch", "onnx"] = Field(
        "auto", description="auto: ONNX Runtime fp32 for a cross-encoder on the CPU when its export matches "
                            "torch, else torch (GPUs: torch fp16); torch or onnx force one.")
    onnx_quantize: Literal["none", "int8"] = Field(
        "none", description="int8: dynamic int8 quantisation on the ONNX path (faster, slightly different scores).")
    # Measured on the trained MiniLM-L6 (docs/BENCHMARKS.md, "Quality"): int8 that ranks as fp32 does moves a
    # check score by up to 0.09 (full range) or 0.12 (7-bit); saturated int8 breaks the order (93% on the test model).
    int8_max_score_diff: float = Field(
        0.15, ge=0, le=1, description="int8 is served only if its scores differ from fp32's by at most this "
                                      "on the check pairs, on the serving CPU (else fp32, said in /info).")
    int8_min_rank_agreement: float = Field(
        0.95, ge=0, le=1, description="...and it orders at least this share of the check documents' pairs "
                                      "as fp32 does.")
    threads: int | None = Field(None, ge=1, description="Intra-op threads for inference (default: all cores).")
    cache_dir: Path = Field(Path.home() / ".cache" / "rerank-kit", description="Where exported ONNX models go.")
    # The score cache (local_server.score_cache): 368 bytes per document's entry, so 64 MiB holds ~180k of them.
    cache_bytes: int = Field(
        64 * 1024 * 1024, ge=0, description="Score cache: memory for cached document scores (bytes; 0 turns the "
                                            "cache off). Answers with it equal answers without it.")
    cache_url: SecretStr | None = Field(
        None, description="Score cache shared by replicas: redis://[:password@]host:6379/0 (optional; when Redis "
                          "is down requests are answered from the model).")
    cache_ttl_s: float = Field(86400.0, gt=0, description="Score cache: how long an entry lives in Redis (seconds).")
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    api_key: SecretStr | None = Field(
        None, description="If set, every route but public_routes needs 'Authorization: Bearer KEY'.")
    offline: bool = Field(False, description="Never contact the Hugging Face Hub.")
    console: bool = Field(True, description="Serve the web console at / and /console/ (false: both answer 404).")
    log_level: str = "info"

    @model_validator(mode="before")
    @classmethod
    def _legacy_kind(cls, data: object) -> object:
        if isinstance(data, dict) and "family" not in data and (legacy := os.environ.get("RERANK_KIND")):
            data = {**data, "family": legacy}
        return _family_was_kind(data)

    @field_validator("api_key", "cache_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        """`RERANK_API_KEY=` (as docker compose passes an unset variable) means no key (and no Redis)."""
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

    def model_specs(self) -> list[ModelSpec]:
        """The served models: the config file's, or the one RERANK_MODEL names."""
        if self.config is not None:
            return read_config(self.config)
        return [ModelSpec(name=self.model_id, path=self.model)]

    def for_model(self, spec: ModelSpec) -> Settings:
        """The settings one model is loaded and served with: these, with the spec's own values on top."""
        return self.model_copy(update={"model": spec.path, "served_model_name": spec.name,
                                       **spec.model_dump(exclude={"name", "path"}, exclude_none=True)})

    @property
    def model_id(self) -> str:
        """The id reported in responses, /info and /v1/models."""
        if self.served_model_name:
            return self.served_model_name
        local = Path(self.model).expanduser()
        return local.name if local.is_dir() else self.model


# The settings a config file's model entry may set for itself; their types, bounds and descriptions are
# Settings' own (Infinity's EngineArgs keeps model options in one place the same way).
PER_MODEL_SETTINGS = ("family", "instruction", "max_length", "query_max_length", "max_batch_tokens", "backend",
                      "onnx_quantize", "device", "fp16", "trust_remote_code", "cutoff_layers", "compress_layers",
                      "compress_ratio", "lazy_load", "idle_unload_s")


class _ModelEntry(BaseModel):
    """One entry of the config file's `models:` list; unset fields take the server-wide RERANK_* values."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    @model_validator(mode="before")
    @classmethod
    def _legacy_kind(cls, data: object) -> object:
        return _family_was_kind(data)

    name: str = Field(min_length=1, description="The id clients send as `model` (and see in /v1/models).")
    path: str = Field(min_length=1, description="Hub id or local folder.")


def _unset_by_default(name: str) -> tuple[Any, Any]:
    """Settings' field `name` as an optional per-model field: same type and bounds, None when not given."""
    field = Settings.model_fields[name]
    optional = field.annotation | None
    typed = Annotated[optional, *field.metadata] if field.metadata else optional
    return typed, Field(None, description=field.description)


ModelSpec = create_model("ModelSpec", __base__=_ModelEntry, __module__=__name__,
                         **{name: _unset_by_default(name) for name in PER_MODEL_SETTINGS})


class ConfigFileError(ValueError):
    """The config file is missing, not YAML, or not a valid `models:` list; the message says which."""


def read_config(path: Path) -> list[ModelSpec]:
    """`models: [{name, path, ...}, ...]` from a YAML file; names must be unique (they route requests)."""
    import yaml

    try:
        data: Any = yaml.safe_load(Path(path).expanduser().read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigFileError(f"cannot read the config file {path}: {exc}") from None
    entries = data.get("models") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigFileError(f"{path}: expected `models:` with a list of {{name, path}} entries")
    try:
        specs = TypeAdapter(list[ModelSpec]).validate_python(entries)
    except ValidationError as exc:
        problems = "; ".join(f"models.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigFileError(f"{path}: {problems}") from None
    names = [spec.name for spec in specs]
    if duplicates := sorted({name for name in names if names.count(name) > 1}):
        raise ConfigFileError(f"{path}: model names must be unique; repeated: {', '.join(duplicates)}")
    return specs
