"""The one mapping from what a request can raise to its typed answer (local_server/errors.py), and the
error_type enum's wire strings, the ones clients already match on (the OpenAPI document publishes them:
tests/e2e/server/test_openapi.py)."""

from __future__ import annotations

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from local_server.backends import ModelLoadError
from local_server.batcher import BatcherStoppedError, OverloadedError
from local_server.engine import InputTooLongError, TooMuchWorkError
from local_server.errors import STATUS, ErrorType, api_error
from local_server.registry import ModelNotFoundError
from rerank_kit.protocol import RerankRequest

WIRE = ["InvalidJson", "Unauthorized", "NotFound", "ModelNotFound", "MethodNotAllowed", "PayloadTooLarge",
        "UnsupportedMediaType", "Validation", "Backend", "Overloaded", "Unhealthy", "HttpError"]


def test_error_types_are_todays_wire_strings_each_with_a_status() -> None:
    assert [str(kind) for kind in ErrorType] == WIRE
    assert set(STATUS) == set(ErrorType) - {ErrorType.HTTP_ERROR}  # HttpError keeps the framework's status


@pytest.mark.parametrize(("exc", "status", "kind", "message", "headers"), [
    (InputTooLongError("document 0 has 600 tokens"), 422, "Validation", "document 0 has 600 tokens", None),
    (TooMuchWorkError("too many pairs"), 413, "PayloadTooLarge", "too many pairs", None),
    (OverloadedError("9 pairs are already waiting"), 503, "Overloaded",
     "server overloaded (9 pairs are already waiting); retry shortly", {"Retry-After": "1"}),
    (BatcherStoppedError("the server is shutting down"), 503, "Unhealthy", "the server is shutting down",
     {"Connection": "close"}),
    (HTTPException(404, "Not Found"), 404, "NotFound", "Not Found", None),
    (ModelNotFoundError("x", ["a", "b"]), 404, "ModelNotFound", "model 'x' is not served here; served models: a, b",
     None),
    (ModelLoadError("cannot load model 'm'"), 500, "Backend", "cannot load model 'm'", None),
    (HTTPException(405, "Method Not Allowed", {"Allow": "POST"}), 405, "MethodNotAllowed", "Method Not Allowed",
     {"Allow": "POST"}),
    (HTTPException(409, "Conflict"), 409, "HttpError", "Conflict", None),
    (KeyError("a bug"), 500, "Backend", "internal error: KeyError", None),
])
def test_each_exception_maps_to_one_typed_answer(exc: Exception, status: int, kind: str, message: str,
                                                 headers: dict[str, str] | None) -> None:
    error = api_error(exc)
    assert (error.status, error.error_type, error.message, error.headers) == (status, kind, message, headers)
    response = error.response()
    assert response.status_code == status
    assert response.body == f'{{"error":"{message}","error_type":"{kind}"}}'.encode()


def test_an_invalid_body_names_its_fields_and_a_stray_validation_error_is_a_500() -> None:
    with pytest.raises(ValidationError) as invalid:
        RerankRequest.model_validate({"query": "", "documents": ["ok", None]})
    error = api_error(RequestValidationError(invalid.value.errors()))
    assert (error.status, error.error_type) == (422, "Validation")
    assert "query:" in error.message and "documents.1:" in error.message
    assert api_error(invalid.value).status == 500  # only the body parser makes it a client's mistake
