"""The FastAPI app: one route per dialect, Bearer auth, typed JSON errors, /health /info /metrics.

Bodies are parsed here (not by FastAPI's signature binding) so that every failure, from a wrong content
type to a null field, gets the same `{"error", "error_type"}` body and the right status.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from local_server.batcher import Batcher, BatcherStoppedError, OverloadedError
from local_server.dialects import documents_response, tei_response
from local_server.engine import InputTooLongError, RerankEngine
from local_server.metrics import Metrics
from local_server.scoring import Scorer
from local_server.settings import Settings
from rerank_kit import __version__
from rerank_kit.protocol import RerankRequest, ServerInfo, TEIRerankRequest

log = logging.getLogger("rerank_kit.app")
Body = TypeVar("Body", bound=BaseModel)
RETRY_AFTER_SECONDS = 1


class ApiError(Exception):
    """An HTTP error with TEI's body shape: `{"error": message, "error_type": kind}`."""

    def __init__(self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.error_type, self.message, self.headers = status, error_type, message, headers


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    if isinstance(content, BaseModel):
        body = content.model_dump_json(exclude_none=True).encode()
    elif isinstance(content, list) and content and isinstance(content[0], BaseModel):
        body = b"[" + b",".join(item.model_dump_json(exclude_none=True).encode() for item in content) + b"]"
    else:
        body = orjson.dumps(content)
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def error_response(status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": message, "error_type": error_type}, status, headers)


def _describe(error: ValidationError | RequestValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p not in ("body", "str", "DocumentObject"))
        parts.append(f"{where or 'body'}: {item.get('msg', 'invalid')}")
    return "; ".join(dict.fromkeys(parts))


async def read_json(request: Request, max_bytes: int) -> dict[str, Any]:
    """The request body as a JSON object, or an ApiError (415, 413, 400, 422)."""
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise ApiError(415, "UnsupportedMediaType",
                       f"content type {content_type!r} is not supported; send application/json")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, "PayloadTooLarge", f"request body over {max_bytes} bytes (RERANK_MAX_REQUEST_BYTES)")
    raw = await request.body()
    if len(raw) > max_bytes:
        raise ApiError(413, "PayloadTooLarge", f"request body over {max_bytes} bytes (RERANK_MAX_REQUEST_BYTES)")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "InvalidJson", f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(422, "Validation", "request body must be a JSON object")
    return data


def validate(model: type[Body], data: dict[str, Any]) -> Body:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "Validation", _describe(exc)) from None


def create_app(settings: Settings, engine: RerankEngine) -> FastAPI:
    """The app around an already loaded engine; the inference thread lives as long as the app."""
    batcher = Batcher(engine.logits, max_batch_tokens=engine.batch_tokens,
                      max_batch_size=settings.max_batch_size, max_wait_ms=settings.max_wait_ms,
                      max_queue_pairs=settings.max_queue_pairs)
    scorer = Scorer(engine, batcher)
    metrics = Metrics(batcher)
    model_id = settings.model_id
    api_key = settings.api_key.get_secret_value().encode() if settings.api_key else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
        batcher.stop()
        scorer.close()

    app = FastAPI(title="rerank-kit", version=__version__, lifespan=lifespan,
                  description="A local cross-encoder reranker speaking TEI, Cohere v1/v2, Jina and "
                              "OpenAI-compatible rerank dialects.")

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.error_type, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
        return error_response(422, "Validation", _describe(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        kind = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HttpError")
        return error_response(exc.status_code, kind, str(exc.detail))

    @app.middleware("http")
    async def _observe(request: Request, call_next):
        """Time and count every answer; an unexpected exception is logged once and answered as a typed 500.

        Caught here rather than by an `Exception` handler: Starlette re-raises after such a handler has
        answered, so uvicorn would log the traceback a second time and drop the keep-alive connection.
        """
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:
            log.exception("unexpected error answering %s %s", request.method, request.url.path)
            response = error_response(500, "Backend", f"internal error: {type(exc).__name__}")
        route = request.scope.get("route")
        metrics.observe(getattr(route, "path", "unmatched"), response.status_code, time.perf_counter() - started)
        return response

    def require_key(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key):
            raise ApiError(401, "Unauthorized",
                           "missing or wrong API key: send 'Authorization: Bearer <key>' with the server's "
                           "RERANK_API_KEY", {"WWW-Authenticate": "Bearer"})

    async def score(query: str, documents: list[str], **options: Any):
        if len(documents) > settings.max_docs:
            raise ApiError(413, "PayloadTooLarge",
                           f"{len(documents)} documents in one request; the limit is {settings.max_docs} "
                           "(RERANK_MAX_DOCS)")
        try:
            scored = await scorer.score(query, documents, **options)
        except InputTooLongError as exc:
            raise ApiError(422, "Validation", str(exc)) from None
        except OverloadedError as exc:
            raise ApiError(503, "Overloaded", f"server overloaded ({exc}); retry shortly",
                           {"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
        except BatcherStoppedError as exc:
            raise ApiError(503, "Unhealthy", str(exc)) from None
        metrics.count_scored(len(documents), scored.tokens)
        return scored

    async def documents_reply(data: dict[str, Any], *, return_documents: bool) -> Response:
        body = validate(RerankRequest, data)
        scored = await score(body.query, body.texts(), raw_scores=body.raw_scores,
                             max_tokens_per_doc=body.max_tokens_per_doc,
                             max_chunks_per_doc=body.max_chunks_per_doc or 1)
        return json_response(documents_response(body, scored, model_id=model_id, return_documents=return_documents))

    async def documents_route(request: Request, *, return_documents: bool) -> Response:
        return await documents_reply(await read_json(request, settings.max_request_bytes),
                                     return_documents=return_documents)

    auth = [Depends(require_key)]
    documents_body = {"requestBody": {"content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/RerankRequest"}}}}}
    either_body = {"requestBody": {"content": {"application/json": {"schema": {"oneOf": [
        {"$ref": "#/components/schemas/RerankRequest"}, {"$ref": "#/components/schemas/TEIRerankRequest"}]}}}}}

    @app.post("/rerank", dependencies=auth, openapi_extra=either_body, tags=["rerank"],
              summary="TEI (`texts`) or native / OpenAI-compatible (`documents`) rerank")
    async def rerank(request: Request) -> Response:
        data = await read_json(request, settings.max_request_bytes)
        if "texts" in data:
            body = validate(TEIRerankRequest, data)
            scored = await score(body.query, body.texts, raw_scores=body.raw_scores,
                                 truncate=body.truncate is not False, direction=body.truncation_direction)
            return json_response(tei_response(body, scored))
        if "documents" not in data:
            raise ApiError(422, "Validation", "body needs `documents` (Cohere, Jina, OpenAI-compatible) "
                                              "or `texts` (Hugging Face TEI)")
        return await documents_reply(data, return_documents=False)

    @app.post("/v1/rerank", dependencies=auth, openapi_extra=documents_body, tags=["rerank"],
              summary="Cohere v1 / Jina / Xinference / GPUStack / vLLM rerank")
    async def rerank_v1(request: Request) -> Response:
        return await documents_route(request, return_documents=True)

    @app.post("/api/v1/rerank", dependencies=auth, openapi_extra=documents_body, tags=["rerank"],
              summary="Jina rerank (alias of /v1/rerank)")
    async def rerank_jina(request: Request) -> Response:
        return await documents_route(request, return_documents=True)

    @app.post("/v2/rerank", dependencies=auth, openapi_extra=documents_body, tags=["rerank"],
              summary="Cohere v2 rerank")
    async def rerank_v2(request: Request) -> Response:
        return await documents_route(request, return_documents=False)

    @app.get("/health", tags=["meta"])
    async def health() -> Response:
        if not batcher.alive:
            return error_response(503, "Unhealthy", "the inference thread is not running")
        return Response(status_code=200)

    info = ServerInfo(
        model_id=model_id, model_dtype=engine.dtype,
        model_type={"reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}},
        max_concurrent_requests=settings.max_queue_pairs, max_input_length=settings.max_length,
        max_batch_tokens=engine.batch_tokens, max_client_batch_size=settings.max_docs,
        version=__version__, server="rerank-kit", max_docs=settings.max_docs,
        query_max_length=settings.effective_query_max_length, device=engine.device, score_transform="sigmoid",
    )

    @app.get("/info", tags=["meta"])
    async def get_info() -> Response:
        return json_response(info)

    models = {"object": "list", "data": [{"id": model_id, "object": "model", "created": int(time.time()),
                                           "owned_by": "rerank-kit", "type": "rerank",
                                           "max_input_length": settings.max_length}]}

    @app.get("/v1/models", tags=["meta"])
    @app.get("/models", tags=["meta"], include_in_schema=False)
    async def list_models() -> Response:
        return json_response(models)

    @app.get("/metrics", tags=["meta"])
    async def get_metrics() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    _publish_schemas(app, RerankRequest, TEIRerankRequest)
    return app


def _publish_schemas(app: FastAPI, *models: type[BaseModel]) -> None:
    """Put the hand-parsed body models into the OpenAPI document that /docs shows."""
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
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
