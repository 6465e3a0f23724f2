"""The FastAPI app: one route per dialect, Bearer auth, /health /info /metrics.

Bodies are parsed here (not by FastAPI's signature binding) so that every failure, from a wrong content
type to a null field, gets the same `{"error", "error_type"}` body and the right status: routes raise,
and local_server.errors maps what they raise to a typed answer. One pure ASGI middleware sits around
everything: it checks the key, counts every answer by status (499 for a client that went away), and turns
an unexpected exception into one log record and a typed 500.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from local_server.backends.torch import resolve_device
from local_server.batcher import Batcher
from local_server.dialects import documents_response, ollama_response, tei_response
from local_server.engine import batch_tokens_for
from local_server.errors import (
    CLIENT_CLOSED_REQUEST,
    EXPECTED,
    ApiError,
    ClientGoneError,
    ErrorType,
    answer_error,
    api_error,
    error_responses,
)
from local_server.metrics import Metrics
from local_server.registry import ServedModels
from local_server.scoring import Scorer
from local_server.settings import Settings
from rerank_kit import __version__
from rerank_kit.protocol import (
    ModelCard,
    ModelList,
    OllamaRerankRequest,
    OllamaRerankResponse,
    RerankRequest,
    RerankResponse,
    ServerInfo,
    TEIRankedList,
    TEIRerankRequest,
)

log = logging.getLogger(__name__)
Body = TypeVar("Body", bound=BaseModel)
_T = TypeVar("_T")


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    if isinstance(content, BaseModel):
        body = content.model_dump_json(exclude_none=True).encode()
    elif isinstance(content, list) and content and isinstance(content[0], BaseModel):
        body = b"[" + b",".join(item.model_dump_json(exclude_none=True).encode() for item in content) + b"]"
    else:
        body = orjson.dumps(content)
    return Response(body, status_code=status, headers=headers, media_type="application/json")


async def read_json(request: Request, max_bytes: int) -> dict[str, Any]:
    """The request body as a JSON object, or an ApiError (415, 413, 400, 422).

    The body is read in chunks and reading stops once it passes `max_bytes`, so a chunked upload without
    a Content-Length costs at most that much memory.
    """
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise ApiError(ErrorType.UNSUPPORTED_MEDIA_TYPE,
                       f"content type {content_type!r} is not supported; send application/json")
    too_large = ApiError(ErrorType.PAYLOAD_TOO_LARGE,
                         f"request body over {max_bytes} bytes (RERANK_MAX_REQUEST_BYTES)",
                         {"Connection": "close"})  # the unread rest of the body makes the connection unusable
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(ErrorType.INVALID_JSON, f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(ErrorType.VALIDATION, "request body must be a JSON object")
    return data


def validate(model: type[Body], data: dict[str, Any]) -> Body:
    """The body as `model`; invalid, FastAPI's RequestValidationError (a 422 naming the fields).

    Only here does a pydantic ValidationError mean a bad request: one raised anywhere else is a bug (500).
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


async def unless_disconnected(request: Request, work: Awaitable[_T]) -> _T:
    """Await `work`, cancelling it when the client disconnects first (its queued pairs are then dropped).

    The body has been read, so the only message `receive` can still bring is the disconnect.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnect(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():  # the client left, or this handler itself was cancelled (shutdown)
            task.cancel()
    if task in done:
        return task.result()
    raise ClientGoneError


async def _disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


@dataclass
class Traffic:
    """Requests being answered now (counted from their first byte, on the event loop), and the drain flag."""

    in_flight: int = 0
    draining: bool = False

    def drain(self, seconds: float, batcher: Batcher) -> None:
        """SIGTERM: let the requests in flight finish for up to `seconds`, then fail the rest (503).

        Blocks: `rerank-kit serve` runs it in a thread of its own while uvicorn stops accepting.
        """
        self.draining = True
        deadline = time.monotonic() + seconds
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        batcher.close("the server is shutting down and could not finish this request in time")


class GuardMiddleware:
    """Key check, metrics by status, and the last line of defence against unexpected exceptions.

    Pure ASGI rather than `@app.middleware("http")`: it must see a client disconnect as it happens and
    must answer a failure itself (Starlette's `Exception` handlers re-raise after answering, so uvicorn
    logs the traceback a second time and drops the keep-alive connection).
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics, traffic: Traffic, api_key: bytes | None,
                 public: frozenset[str]) -> None:
        self.app, self.metrics, self.traffic, self.api_key, self.public = app, metrics, traffic, api_key, public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None
        self.traffic.in_flight += 1

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if self.api_key is not None and scope["path"] not in self.public and not self._authorized(scope):
                unauthorized = ApiError(ErrorType.UNAUTHORIZED, "missing or wrong API key: send 'Authorization: "
                                        "Bearer <key>' with the server's RERANK_API_KEY",
                                        {"WWW-Authenticate": "Bearer"})
                await unauthorized.response()(scope, receive, send_and_note)
            else:
                await self.app(scope, receive, send_and_note)
        except (ClientGoneError, ClientDisconnect):  # gone before its answer: during the upload, or after
            status = CLIENT_CLOSED_REQUEST
        except Exception as exc:
            log.exception("unexpected error answering %s %s", scope["method"], scope["path"])
            if status is None:
                await api_error(exc).response()(scope, receive, send_and_note)
        finally:
            self.traffic.in_flight -= 1
            self.metrics.observe(_route_label(scope), status or CLIENT_CLOSED_REQUEST, time.perf_counter() - started)

    def _authorized(self, scope: Scope) -> bool:
        header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        scheme, _, token = header.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.api_key or b"")


def _route_label(scope: Scope) -> str:
    """The matched route's path; a refused request's path only when it names a route (bounded labels)."""
    if route := scope.get("route"):
        return getattr(route, "path", "unmatched")
    known = {getattr(route, "path", None) for route in scope["app"].routes}
    return scope["path"] if scope["path"] in known else "unmatched"


def _json_body(*schemas: str) -> dict[str, Any]:
    refs = [{"$ref": f"#/components/schemas/{name}"} for name in schemas]
    return {"application/json": {"schema": refs[0] if len(refs) == 1 else {"oneOf": refs}}}


_RERANK_ERRORS = error_responses(400, 401, 404, 413, 415, 422, 500, 503)
_META_ERRORS = error_responses(401, 500)  # 401 only for a route left out of RERANK_PUBLIC_ROUTES


def create_app(settings: Settings, models: ServedModels) -> FastAPI:
    """The app around the served models; the inference thread lives as long as the app."""
    batcher = models.batcher
    scorer = Scorer(models)
    metrics = Metrics(batcher)
    api_key = settings.api_key.get_secret_value().encode() if settings.api_key else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        unloader = asyncio.create_task(models.unload_idle_forever())
        yield
        unloader.cancel()
        await asyncio.to_thread(batcher.stop)  # joins the inference thread: never on the event loop
        scorer.close()

    app = FastAPI(title="rerank-kit", version=__version__, lifespan=lifespan,
                  description="A local reranker (cross-encoders, LLM rerankers, Qwen3-Reranker; several models "
                              "routed by `model`) speaking TEI, Cohere v1/v2, Jina, Ollama and "
                              "OpenAI-compatible rerank dialects.")
    traffic = Traffic()
    app.state.drain = functools.partial(traffic.drain, batcher=batcher)  # `rerank-kit serve`, on SIGTERM
    app.add_middleware(GuardMiddleware, metrics=metrics, traffic=traffic,  # type: ignore[arg-type]
                       api_key=api_key, public=frozenset(settings.public_routes))

    for expected in EXPECTED:
        app.add_exception_handler(expected, answer_error)

    def check_windows(max_chunks_per_doc: int, max_tokens_per_doc: int | None) -> None:
        """Bound the windows a request may ask per document, and their smallest size."""
        if max_chunks_per_doc > settings.max_chunks_per_doc:
            raise ApiError(ErrorType.VALIDATION, f"max_chunks_per_doc: at most {settings.max_chunks_per_doc} "
                                                 "windows per document (RERANK_MAX_CHUNKS_PER_DOC)")
        if max_chunks_per_doc > 1 and max_tokens_per_doc is not None and (
                max_tokens_per_doc < settings.min_window_tokens):
            raise ApiError(ErrorType.VALIDATION, f"max_tokens_per_doc: windows of at least "
                                                 f"{settings.min_window_tokens} tokens when max_chunks_per_doc > 1 "
                                                 "(RERANK_MIN_WINDOW_TOKENS)")

    async def score(request: Request, model: str | None, query: str, documents: list[str], **options: Any):
        if len(documents) > settings.max_docs:
            raise ApiError(ErrorType.PAYLOAD_TOO_LARGE,
                           f"{len(documents)} documents in one request; the limit is {settings.max_docs} "
                           "(RERANK_MAX_DOCS)")
        scored = await unless_disconnected(request, scorer.score(model, query, documents, **options))
        metrics.count_scored(len(documents), scored.tokens)
        return scored

    async def documents_reply(request: Request, data: dict[str, Any], *, return_documents: bool) -> Response:
        body = validate(RerankRequest, data)
        check_windows(body.max_chunks_per_doc or 1, body.max_tokens_per_doc)
        scored = await score(request, body.model, body.query, body.texts(), raw_scores=body.raw_scores,
                             max_tokens_per_doc=body.max_tokens_per_doc,
                             max_chunks_per_doc=body.max_chunks_per_doc or 1, instruction=body.instruction)
        return json_response(documents_response(body, scored, return_documents=return_documents))

    async def documents_route(request: Request, *, return_documents: bool) -> Response:
        return await documents_reply(request, await read_json(request, settings.max_request_bytes),
                                     return_documents=return_documents)

    documents_route_spec: dict[str, Any] = {
        "tags": ["rerank"],
        "openapi_extra": {"requestBody": {"required": True, "content": _json_body("RerankRequest")}},
        "responses": {200: {"description": "ranked documents", "content": _json_body("RerankResponse")},
                      **_RERANK_ERRORS}}
    either_body = {"requestBody": {"required": True, "content": _json_body("RerankRequest", "TEIRerankRequest")}}
    either_answer = {"description": "`documents` body: RerankResponse; `texts` body: TEI's list",
                     "content": _json_body("RerankResponse", "TEIRankedList")}

    @app.post("/rerank", openapi_extra=either_body, tags=["rerank"], responses={200: either_answer, **_RERANK_ERRORS},
              summary="TEI (`texts`) or native / OpenAI-compatible (`documents`) rerank")
    async def rerank(request: Request) -> Response:
        data = await read_json(request, settings.max_request_bytes)
        if "texts" in data:
            body = validate(TEIRerankRequest, data)
            scored = await score(request, body.model, body.query, body.texts, raw_scores=body.raw_scores,
                                 truncate=body.truncate is not False, direction=body.truncation_direction,
                                 instruction=body.instruction)
            return json_response(tei_response(body, scored))
        if "documents" not in data:
            raise ApiError(ErrorType.VALIDATION, "body needs `documents` (Cohere, Jina, OpenAI-compatible) "
                                                 "or `texts` (Hugging Face TEI)")
        return await documents_reply(request, data, return_documents=False)

    @app.post("/v1/rerank", **documents_route_spec,
              summary="Cohere v1 / Jina / Xinference / GPUStack / vLLM rerank")
    async def rerank_v1(request: Request) -> Response:
        return await documents_route(request, return_documents=True)

    @app.post("/api/v1/rerank", **documents_route_spec,
              summary="Jina rerank (alias of /v1/rerank)")
    async def rerank_jina(request: Request) -> Response:
        return await documents_route(request, return_documents=True)

    @app.post("/v2/rerank", **documents_route_spec,
              summary="Cohere v2 rerank")
    async def rerank_v2(request: Request) -> Response:
        return await documents_route(request, return_documents=False)

    @app.post("/api/rerank", tags=["rerank"], summary="Ollama rerank (Dify's Ollama plugin appends /api/rerank)",
              openapi_extra={"requestBody": {"required": True, "content": _json_body("OllamaRerankRequest")}},
              responses={200: {"description": "ranked documents, best first",
                               "content": _json_body("OllamaRerankResponse")},
                         **_RERANK_ERRORS})
    async def rerank_ollama(request: Request) -> Response:
        body = validate(OllamaRerankRequest, await read_json(request, settings.max_request_bytes))
        scored = await score(request, body.model, body.query, body.documents, raw_scores=body.raw_scores,
                             instruction=body.instruction)
        return json_response(ollama_response(body, scored))

    @app.get("/health", tags=["meta"], response_class=Response,
             responses={200: {"description": "ready (empty body)"}, **_META_ERRORS, **error_responses(503)})
    async def health() -> Response:
        if traffic.draining or not batcher.alive:
            raise ApiError(ErrorType.UNHEALTHY, "the server is shutting down" if traffic.draining
                           else "the inference thread is not running")
        return Response(status_code=200)

    # What one request may carry: documents, and pairs (one per document without windows) within the queue.
    documents_per_request = min(settings.max_docs, settings.effective_max_pairs_per_request)

    @app.get("/info", tags=["meta"], responses={200: {"description": "TEI's /info for the default model, "
                                                                     "rerank-kit's limits and every served model",
                                                      "content": _json_body("ServerInfo")}, **_META_ERRORS})
    async def get_info() -> Response:
        default = models.default
        own, engine = default.settings, default.engine  # engine None: a lazy model not loaded yet
        return json_response(ServerInfo(
            model_id=default.name, model_dtype=engine.dtype if engine else "float32",
            model_type={"reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}},
            max_concurrent_requests=settings.max_queue_pairs, max_input_length=own.max_length,
            max_batch_tokens=engine.batch_tokens if engine else batch_tokens_for(own, resolve_device(own.device)),
            max_client_batch_size=documents_per_request, version=__version__, server="rerank-kit",
            max_docs=documents_per_request, query_max_length=own.effective_query_max_length,
            device=engine.device if engine else None, score_transform="sigmoid", kind=default.kind,
            models=models.names, backend=engine.backend.name if engine else None,
            backend_note=engine.note if engine else None,
        ))

    created = int(time.time())

    @app.get("/v1/models", tags=["meta"], responses={200: {"description": "the served models (OpenAI's list)",
                                                           "content": _json_body("ModelList")}, **_META_ERRORS})
    @app.get("/models", tags=["meta"], include_in_schema=False)
    async def list_models() -> Response:
        return json_response(ModelList(data=[
            ModelCard(id=model.name, created=created, type="rerank", max_input_length=model.settings.max_length,
                      kind=model.kind, backend_note=model.engine.note if model.engine else None)
            for model in models.models]))

    @app.get("/metrics", tags=["meta"], response_class=Response,
             responses={200: {"description": "Prometheus text format",
                              "content": {"text/plain": {"schema": {"type": "string"}}}}, **_META_ERRORS})
    async def get_metrics() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    _publish_schemas(app, settings, RerankRequest, TEIRerankRequest, RerankResponse, TEIRankedList, ServerInfo,
                     ModelList, OllamaRerankRequest, OllamaRerankResponse)
    return app


def _publish_schemas(app: FastAPI, settings: Settings, *models: type[BaseModel]) -> None:
    """Put the hand-parsed body models into the OpenAPI document that /docs shows, with this server's
    limits (documents per request, windows per document) as schema bounds."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            spec = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(spec.pop("$defs", {}))
            components[model.__name__] = spec
        documents = components["RerankRequest"]["properties"]
        documents["documents"]["maxItems"] = settings.max_docs
        components["TEIRerankRequest"]["properties"]["texts"]["maxItems"] = settings.max_docs
        components["OllamaRerankRequest"]["properties"]["documents"]["maxItems"] = settings.max_docs
        chunks = next(s for s in documents["max_chunks_per_doc"]["anyOf"] if s.get("type") == "integer")
        chunks["maximum"] = settings.max_chunks_per_doc
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
