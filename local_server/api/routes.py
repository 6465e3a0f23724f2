"""The route table and its handlers: one route per dialect, and the meta routes.

Handlers are plain functions of the request; what they share (settings, models, scorer, metrics, traffic)
is one `Serving` object on the app's state. Bodies are parsed here (not by FastAPI's signature binding) so
that every failure, from a wrong content type to a null field, gets the same `{"error", "error_type"}` body
and the right status: handlers raise, and local_server.errors maps what they raise to a typed answer.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from local_server.api.bodies import json_response, read_json, unless_disconnected, validate
from local_server.api.openapi import META_ERRORS, RERANK_ERRORS, json_body
from local_server.api.traffic import Traffic
from local_server.dialects import documents_response, ollama_response, tei_response
from local_server.errors import ApiError, ErrorType, error_responses
from local_server.metrics import Metrics
from local_server.registry import ServedModels
from local_server.scoring import Scored, Scorer
from local_server.settings import Settings
from local_server.stats import Stats
from rerank_kit.protocol import ModelCard, ModelList, OllamaRerankRequest, RerankRequest, TEIRerankRequest


@dataclass
class Serving:
    """What every handler reads: one per app, on `app.state.serving`."""

    settings: Settings
    models: ServedModels
    scorer: Scorer
    metrics: Metrics
    traffic: Traffic
    stats: Stats = field(init=False)  # the console's figures, fed by every scoring route
    started: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        self.stats = Stats(self.metrics, self.models, scoring_routes=SCORING_ROUTES)

    @property
    def documents_per_request(self) -> int:
        """What one request may carry: documents, and pairs (one per document without windows) within the queue."""
        return min(self.settings.max_docs, self.settings.effective_max_pairs_per_request)


def serving(request: Request) -> Serving:
    return request.app.state.serving


# -- scoring, shared by the dialects -------------------------------------------------------------------


def check_windows(settings: Settings, max_chunks_per_doc: int, max_tokens_per_doc: int | None) -> None:
    """Bound the windows a request may ask per document, and their smallest size."""
    if max_chunks_per_doc > settings.max_chunks_per_doc:
        raise ApiError(ErrorType.VALIDATION, f"max_chunks_per_doc: at most {settings.max_chunks_per_doc} "
                                             "windows per document (RERANK_MAX_CHUNKS_PER_DOC)")
    if max_chunks_per_doc > 1 and max_tokens_per_doc is not None and (
            max_tokens_per_doc < settings.min_window_tokens):
        raise ApiError(ErrorType.VALIDATION, f"max_tokens_per_doc: windows of at least "
                                             f"{settings.min_window_tokens} tokens when max_chunks_per_doc > 1 "
                                             "(RERANK_MIN_WINDOW_TOKENS)")


async def score(request: Request, model: str | None, query: str, documents: list[str], **options: Any) -> Scored:
    """The documents scored for the query by the named model; the request cancelled if its client leaves."""
    state = serving(request)
    if len(documents) > state.settings.max_docs:
        raise ApiError(ErrorType.PAYLOAD_TOO_LARGE,
                       f"{len(documents)} documents in one request; the limit is {state.settings.max_docs} "
                       "(RERANK_MAX_DOCS)")
    scored = await unless_disconnected(request, state.scorer.score(model, query, documents, **options))
    state.metrics.count_scored(len(documents), scored.tokens)
    state.stats.record(scored.model, scored.scores, calibrated=not options.get("raw_scores"))
    return scored


async def answer_documents_body(request: Request, data: dict[str, Any], *, return_documents: bool) -> Response:
    """A `documents` body (Cohere, Jina, OpenAI-compatible) answered with `results`."""
    body = validate(RerankRequest, data)
    check_windows(serving(request).settings, body.max_chunks_per_doc or 1, body.max_tokens_per_doc)
    scored = await score(request, body.model, body.query, body.texts(), raw_scores=body.raw_scores,
                         max_tokens_per_doc=body.max_tokens_per_doc,
                         max_chunks_per_doc=body.max_chunks_per_doc or 1, instruction=body.instruction)
    return json_response(documents_response(body, scored, return_documents=return_documents))


async def body_of(request: Request) -> dict[str, Any]:
    return await read_json(request, serving(request).settings.max_request_bytes)


# -- the handlers ----------------------------------------------------------------------------------------


async def rerank(request: Request) -> Response:
    """TEI's `texts` body, or a `documents` body (answered without the documents' text)."""
    data = await body_of(request)
    if "texts" in data:
        body = validate(TEIRerankRequest, data)
        scored = await score(request, body.model, body.query, body.texts, raw_scores=body.raw_scores,
                             truncate=body.truncate is not False, direction=body.truncation_direction,
                             instruction=body.instruction)
        return json_response(tei_response(body, scored))
    if "documents" not in data:
        raise ApiError(ErrorType.VALIDATION, "body needs `documents` (Cohere, Jina, OpenAI-compatible) "
                                             "or `texts` (Hugging Face TEI)")
    return await answer_documents_body(request, data, return_documents=False)


async def rerank_with_documents(request: Request) -> Response:
    """Cohere v1, Jina, Xinference, GPUStack, vLLM: the documents' text echoed unless asked otherwise."""
    return await answer_documents_body(request, await body_of(request), return_documents=True)


async def rerank_cohere_v2(request: Request) -> Response:
    return await answer_documents_body(request, await body_of(request), return_documents=False)


async def rerank_ollama(request: Request) -> Response:
    body = validate(OllamaRerankRequest, await body_of(request))
    scored = await score(request, body.model, body.query, body.documents, raw_scores=body.raw_scores,
                         instruction=body.instruction)
    return json_response(ollama_response(body, scored))


async def health(request: Request) -> Response:
    state = serving(request)
    if state.traffic.draining or not state.models.batcher.alive:
        raise ApiError(ErrorType.UNHEALTHY, "the server is shutting down" if state.traffic.draining
                       else "the inference thread is not running")
    return Response(status_code=200)


async def info(request: Request) -> Response:
    state = serving(request)
    return json_response(state.models.info(state.settings, documents_per_request=state.documents_per_request))


async def list_models(request: Request) -> Response:
    state = serving(request)
    return json_response(ModelList(data=[
        ModelCard(id=model.name, created=state.started, type="rerank", max_input_length=model.settings.max_length,
                  kind=model.family, backend_note=model.engine.note if model.engine else None)
        for model in state.models.models]))


async def metrics(request: Request) -> Response:
    body, content_type = serving(request).metrics.render()
    return Response(body, media_type=content_type)


async def stats(request: Request) -> Response:
    """The console's live figures and recent score distributions (local_server.stats), read from /metrics' counters."""
    return json_response(serving(request).stats.build())


# -- the table ---------------------------------------------------------------------------------------------

Handler = Callable[[Request], Awaitable[Response]]
_DOCUMENTS = {"tags": ["rerank"], "openapi_extra": {"requestBody": {"required": True,
                                                                     "content": json_body("RerankRequest")}},
              "responses": {200: {"description": "ranked documents", "content": json_body("RerankResponse")},
                            **RERANK_ERRORS}}


def _meta(description: str, *schemas: str, **extra: Any) -> dict[str, Any]:
    content = {"content": json_body(*schemas)} if schemas else {}
    return {"tags": ["meta"], "responses": {200: {"description": description, **content}, **META_ERRORS}, **extra}


ROUTES: list[tuple[str, str, Handler, dict[str, Any]]] = [
    ("POST", "/rerank", rerank, {
        "tags": ["rerank"], "summary": "TEI (`texts`) or native / OpenAI-compatible (`documents`) rerank",
        "openapi_extra": {"requestBody": {"required": True,
                                          "content": json_body("RerankRequest", "TEIRerankRequest")}},
        "responses": {200: {"description": "`documents` body: RerankResponse; `texts` body: TEI's list",
                            "content": json_body("RerankResponse", "TEIRankedList")}, **RERANK_ERRORS}}),
    ("POST", "/v1/rerank", rerank_with_documents,
     {**_DOCUMENTS, "summary": "Cohere v1 / Jina / Xinference / GPUStack / vLLM rerank"}),
    ("POST", "/api/v1/rerank", rerank_with_documents, {**_DOCUMENTS, "summary": "Jina rerank (alias of /v1/rerank)"}),
    ("POST", "/v2/rerank", rerank_cohere_v2, {**_DOCUMENTS, "summary": "Cohere v2 rerank"}),
    ("POST", "/api/rerank", rerank_ollama, {
        "tags": ["rerank"], "summary": "Ollama rerank (Dify's Ollama plugin appends /api/rerank)",
        "openapi_extra": {"requestBody": {"required": True, "content": json_body("OllamaRerankRequest")}},
        "responses": {200: {"description": "ranked documents, best first",
                            "content": json_body("OllamaRerankResponse")}, **RERANK_ERRORS}}),
    ("GET", "/health", health, {"response_class": Response, "tags": ["meta"], "responses": {
        200: {"description": "ready (empty body)"}, **META_ERRORS, **error_responses(503)}}),
    ("GET", "/info", info, _meta("TEI's /info for the default model, rerank-kit's limits and every served model",
                                 "ServerInfo")),
    ("GET", "/v1/models", list_models, _meta("the served models (OpenAI's list)", "ModelList")),
    ("GET", "/models", list_models, _meta("the served models (OpenAI's list)", "ModelList",
                                          include_in_schema=False)),
    ("GET", "/metrics", metrics, _meta("Prometheus text format", response_class=Response) | {
        "responses": {200: {"description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}}}, **META_ERRORS}}),
    ("GET", "/stats", stats, _meta("live rates, latency, queue, errors, and per model its state, counts and recent "
                                   "score distribution (what the console shows)") | {
        "responses": {200: {"description": "the console's figures", "content": {"application/json": {"schema": {
            "type": "object", "required": ["requests_per_s", "pairs_per_s", "latency_ms", "queue_pairs", "errors",
                                           "models"]}}}}, **META_ERRORS}}),
]
# The routes that score: their requests and latency are the console's live figures.
SCORING_ROUTES = frozenset(path for _, path, _, spec in ROUTES if "rerank" in spec.get("tags", ()))


def add_routes(app: FastAPI) -> None:
    for method, path, handler, spec in ROUTES:
        app.add_api_route(path, handler, methods=[method], **spec)
