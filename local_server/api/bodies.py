"""Reading a request body (streamed, bounded, typed errors), validating it, and writing a JSON answer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from local_server.errors import ApiError, ClientGoneError, ErrorType

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
