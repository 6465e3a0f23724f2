"""Dify rerank model backed by a rerank-kit server, through the shared `rerank_kit.client`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dify_plugin import RerankModel
from dify_plugin.entities import I18nObject
from dify_plugin.entities.model import AIModelEntity, FetchFrom, ModelPropertyKey, ModelType
from dify_plugin.entities.model.rerank import MultiModalRerankResult, RerankDocument, RerankResult
from dify_plugin.entities.model.text_embedding import MultiModalContent, MultiModalContentType
from dify_plugin.errors.model import (
    CredentialsValidateFailedError,
    InvokeAuthorizationError,
    InvokeBadRequestError,
    InvokeConnectionError,
    InvokeError,
    InvokeRateLimitError,
    InvokeServerUnavailableError,
)

from rerank_kit.client.forms import FormSettings, check_credentials, shared_client
from rerank_kit.errors import (
    AuthError,
    BadRequestError,
    ConfigurationError,
    InvalidInputError,
    ModelNotServedError,
    NotARerankerError,
    RateLimitError,
    ServerError,
    TransportError,
)

DEFAULT_CONTEXT_SIZE = 512


def _text_of(content: MultiModalContent) -> str:
    if content.content_type != MultiModalContentType.TEXT:
        raise InvalidInputError(
            f"{content.content_type.value} content cannot be reranked",
            hint="rerank-kit serves text rerankers: send text contents only",
        )
    return content.content


class LocalRerankModel(RerankModel):
    """Reranks with the model the configured rerank-kit server serves under this model name (any of its
    served models: cross-encoders, LLM rerankers, Qwen3-Reranker; the server routes by name)."""

    def _invoke(
        self,
        model: str,
        credentials: dict,
        query: str,
        docs: list[str],
        score_threshold: float | None = None,
        top_n: int | None = None,
        user: str | None = None,
    ) -> RerankResult:
        """Score `docs` against `query`; keep the best `top_n` at or above `score_threshold`.

        Dify's daemon sends 0 / 0.0 when top_n / score_threshold are unset: both then mean "no limit".
        """
        if not docs:
            return RerankResult(model=model, docs=[])
        limit = top_n if top_n and top_n > 0 else None
        response = shared_client(FormSettings.parse(credentials, model)).rerank(query, docs, top_n=limit)
        ranked = [
            RerankDocument(index=result.index, text=docs[result.index], score=result.relevance_score)
            for result in response.results
            if not score_threshold or result.relevance_score >= score_threshold
        ]
        return RerankResult(model=model, docs=ranked[:limit])

    def _invoke_multimodal(
        self,
        model: str,
        credentials: dict,
        query: MultiModalContent,
        docs: Sequence[MultiModalContent],
        score_threshold: float | None = None,
        top_n: int | None = None,
        user: str | None = None,
    ) -> MultiModalRerankResult:
        """The multimodal entry point, for text contents; images are refused with a clear error."""
        texts = [_text_of(doc) for doc in docs]
        result = self._invoke(model, credentials, _text_of(query), texts, score_threshold, top_n, user)
        return MultiModalRerankResult(model=result.model, docs=result.docs)

    def validate_credentials(self, model: str, credentials: dict) -> None:
        """Check the server for real (reachable, key accepted, a reranker, serving this model name: the error
        names the served ones) and keep its context size."""
        report = check_credentials(credentials, model)
        if not report.ok:
            raise CredentialsValidateFailedError(report.message) from report.error
        if report.max_input_length:
            credentials["context_size"] = report.max_input_length

    def get_customizable_model_schema(self, model: str, credentials: Mapping) -> AIModelEntity:
        """The schema of a user-named model: a rerank model with the server's context size."""
        return AIModelEntity(
            model=model,
            label=I18nObject(en_US=model),
            fetch_from=FetchFrom.CUSTOMIZABLE_MODEL,
            model_type=ModelType.RERANK,
            model_properties={
                ModelPropertyKey.CONTEXT_SIZE: int(credentials.get("context_size") or DEFAULT_CONTEXT_SIZE)
            },
            parameter_rules=[],
        )

    @property
    def _invoke_error_mapping(self) -> dict[type[InvokeError], list[type[Exception]]]:
        """The client's error families onto Dify's. A 503 with Retry-After is a RateLimitError (Dify: rate limited);
        what the user must fix (settings, input, a server that is no reranker or lacks the model) is a bad request."""
        return {
            InvokeConnectionError: [TransportError],
            InvokeServerUnavailableError: [ServerError],
            InvokeRateLimitError: [RateLimitError],
            InvokeAuthorizationError: [AuthError],
            InvokeBadRequestError: [BadRequestError, ConfigurationError, InvalidInputError, NotARerankerError,
                                    ModelNotServedError],
        }
