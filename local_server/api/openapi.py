"""What /docs and /openapi.json publish: the hand-parsed bodies as schemas, with this server's limits."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI
from pydantic import BaseModel, Field, create_model

from local_server.errors import error_responses
from local_server.settings import Settings
from rerank_kit.protocol import (
    ModelList,
    OllamaRerankRequest,
    OllamaRerankResponse,
    RerankRequest,
    RerankResponse,
    ServerInfo,
    TEIRankedList,
    TEIRerankRequest,
)

RERANK_ERRORS = error_responses(400, 401, 404, 413, 415, 422, 500, 503)
META_ERRORS = error_responses(401, 500)  # 401 only for a route left out of RERANK_PUBLIC_ROUTES


def json_body(*schemas: str) -> dict[str, Any]:
    """An OpenAPI content entry for one of the published schemas (several: any of them)."""
    refs = [{"$ref": f"#/components/schemas/{name}"} for name in schemas]
    return {"application/json": {"schema": refs[0] if len(refs) == 1 else {"oneOf": refs}}}


def publish_schemas(app: FastAPI, settings: Settings) -> None:
    """Put the hand-parsed body models into the OpenAPI document that /docs shows, with this server's limits
    (documents per request, windows per document) as schema bounds."""
    models = [
        _bounded(RerankRequest, documents={"max_length": settings.max_docs},
                 max_chunks_per_doc={"le": settings.max_chunks_per_doc}),
        _bounded(TEIRerankRequest, texts={"max_length": settings.max_docs}),
        _bounded(OllamaRerankRequest, documents={"max_length": settings.max_docs}),
        RerankResponse, TEIRankedList, ServerInfo, ModelList, OllamaRerankResponse,
    ]
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if not app.openapi_schema:
            schema = build()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                spec = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(spec.pop("$defs", {}))
                components[model.__name__] = spec
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _bounded(model: type[BaseModel], **bounds: dict[str, int]) -> type[BaseModel]:
    """`model` with schema bounds added to some fields (published only: the routes enforce the limits with
    their own status codes, e.g. 413 for too many documents)."""
    fields: dict[str, Any] = {name: (Annotated[model.model_fields[name].annotation, Field(**extra)],
                                     model.model_fields[name]) for name, extra in bounds.items()}
    return create_model(model.__name__, __base__=model, **fields)
