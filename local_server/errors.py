"""Every error the server answers, in one place: the kinds (ErrorType), their HTTP statuses, the one
mapping from what a request can raise to its typed answer, and how the OpenAPI document shows them.

Every error body is TEI's `{"error": message, "error_type": kind}`; clients match on `error_type`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from local_server.backends import ModelLoadError
from local_server.batcher import BatcherStoppedError, OverloadedError
from local_server.engine import InputTooLongError, TooMuchWorkError
from local_server.registry import ModelNotFoundError
from rerank_kit import protocol

RETRY_AFTER_SECONDS = 1
# nginx's "client closed request": counted in /metrics, never sent (nobody is left to answer)
CLIENT_CLOSED_REQUEST = 499


class ErrorType(StrEnum):
    """`error_type` of an error body; the values are the strings on the wire."""

    INVALID_JSON = "InvalidJson"
    UNAUTHORIZED = "Unauthorized"
    NOT_FOUND = "NotFound"
    MODEL_NOT_FOUND = "ModelNotFound"  # the request's `model` is not served; the message names the served ones
    METHOD_NOT_ALLOWED = "MethodNotAllowed"
    PAYLOAD_TOO_LARGE = "PayloadTooLarge"
    UNSUPPORTED_MEDIA_TYPE = "UnsupportedMediaType"
    VALIDATION = "Validation"
    BACKEND = "Backend"
    OVERLOADED = "Overloaded"
    UNHEALTHY = "Unhealthy"
    HTTP_ERROR = "HttpError"  # any other error the framework raises, with the status it chose


STATUS: dict[ErrorType, int] = {
    ErrorType.INVALID_JSON: 400,
    ErrorType.UNAUTHORIZED: 401,
    ErrorType.NOT_FOUND: 404,
    ErrorType.MODEL_NOT_FOUND: 404,
    ErrorType.METHOD_NOT_ALLOWED: 405,
    ErrorType.PAYLOAD_TOO_LARGE: 413,
    ErrorType.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorType.VALIDATION: 422,
    ErrorType.BACKEND: 500,
    ErrorType.OVERLOADED: 503,
    ErrorType.UNHEALTHY: 503,
}


class ErrorBody(protocol.ErrorBody):
    """Every error response: `{"error": message, "error_type": kind}` (TEI's shape), `kind` one of ErrorType.

    The shared wire model keeps `error_type` a plain string (a client must not break on a kind it does not
    know); the server's own document publishes the closed set it answers with.
    """

    error_type: ErrorType


class ApiError(Exception):
    """A typed error answer; its status is its type's (STATUS), except for HttpError."""

    def __init__(self, error_type: ErrorType, message: str, headers: dict[str, str] | None = None, *,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.error_type, self.message, self.headers = error_type, message, headers
        self.status = STATUS[error_type] if status is None else status

    def response(self) -> Response:
        body = orjson.dumps({"error": self.message, "error_type": self.error_type})
        return Response(body, status_code=self.status, headers=self.headers, media_type="application/json")


class ClientGoneError(Exception):
    """The client closed the connection before its answer was ready; its pending pairs were dropped."""


# What a route may raise on purpose; anything else is a bug, answered 500 by the app's outer middleware.
EXPECTED = (ApiError, InputTooLongError, TooMuchWorkError, OverloadedError, BatcherStoppedError,
            ModelNotFoundError, ModelLoadError, RequestValidationError, StarletteHTTPException)
_ROUTING = {404: ErrorType.NOT_FOUND, 405: ErrorType.METHOD_NOT_ALLOWED}  # the framework's own refusals


def api_error(exc: Exception) -> ApiError:
    """The typed answer to an exception raised while answering a request (an unexpected one is a 500)."""
    match exc:
        case ApiError():
            return exc
        case InputTooLongError():
            return ApiError(ErrorType.VALIDATION, str(exc))
        case TooMuchWorkError():
            return ApiError(ErrorType.PAYLOAD_TOO_LARGE, str(exc))
        case OverloadedError():
            return ApiError(ErrorType.OVERLOADED, f"server overloaded ({exc}); retry shortly",
                            {"Retry-After": str(RETRY_AFTER_SECONDS)})
        case BatcherStoppedError():
            return ApiError(ErrorType.UNHEALTHY, str(exc), {"Connection": "close"})
        case ModelNotFoundError():
            return ApiError(ErrorType.MODEL_NOT_FOUND, str(exc))
        case ModelLoadError():  # a lazily loaded model that could not be loaded on its first request
            return ApiError(ErrorType.BACKEND, str(exc))
        case RequestValidationError():
            return ApiError(ErrorType.VALIDATION, _describe(exc))
        case StarletteHTTPException():
            kind = _ROUTING.get(exc.status_code, ErrorType.HTTP_ERROR)
            return ApiError(kind, str(exc.detail), exc.headers, status=exc.status_code)  # 405 keeps its Allow
        case _:
            return ApiError(ErrorType.BACKEND, f"internal error: {type(exc).__name__}")


async def answer_error(_: Request, exc: Exception) -> Response:
    """The app's exception handler for every EXPECTED exception."""
    return api_error(exc).response()


def _describe(error: RequestValidationError) -> str:
    """`documents.1: Input should be a valid string; query: ...`: each invalid field once."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p not in ("body", "str", "DocumentObject"))
        parts.append(f"{where or 'body'}: {item.get('msg', 'invalid')}")
    return "; ".join(dict.fromkeys(parts))


# The OpenAPI document's error answers, by status; schemathesis checks the server against it.
_DESCRIPTIONS = {
    400: "the body is not JSON", 401: "RERANK_API_KEY is set and the Bearer key is missing or wrong",
    404: "the request's `model` is not served (ModelNotFound; the message names the served models)",
    413: "a request limit was passed (the message names the setting)",
    415: "the body is not JSON by its content type", 422: "the body is invalid (the message names the field)",
    500: "an unexpected failure (the server keeps serving)",
    503: "overloaded (with Retry-After), shutting down, or the inference thread is not running",
}
_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    503: {"Retry-After": {"schema": {"type": "string"}, "description": "seconds, when overloaded"}},
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's documented error answers (FastAPI's `responses=`)."""
    return {status: {"model": ErrorBody, "description": _DESCRIPTIONS[status], "headers": _HEADERS.get(status, {})}
            for status in statuses}
