"""schemathesis against the server's own OpenAPI document, over real HTTP, with and without an API key:
generated valid and invalid requests on every route; no 5xx, and every answer (status, headers, body)
as the document says. Bounded: a fixed number of examples per operation, derandomised. The document publishes
the error_type enum."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.support.server_process import running_server

# local_server.errors.ErrorType's values, the wire strings clients match on (tests/unit/local_server/test_errors.py).
WIRE = ["InvalidJson", "Unauthorized", "NotFound", "ModelNotFound", "MethodNotAllowed", "PayloadTooLarge",
        "UnsupportedMediaType", "Validation", "Backend", "Overloaded", "Unhealthy", "HttpError"]
KEY = "sk-schema-test"
EXAMPLES = 30


@pytest.fixture(scope="module")
def open_schema(tiny_model_dir: Path) -> Iterator[schemathesis.BaseSchema]:
    with running_server(tiny_model_dir, max_docs="50") as url:
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")


@pytest.fixture(scope="module")
def keyed_schema(tiny_model_dir: Path) -> Iterator[schemathesis.BaseSchema]:
    with running_server(tiny_model_dir, max_docs="50", api_key=KEY) as url:
        yield schemathesis.openapi.from_url(f"{url}/openapi.json", headers={"Authorization": f"Bearer {KEY}"})


_bounded = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def fuzz_every_operation(schema: schemathesis.BaseSchema, headers: dict[str, str]) -> list[str]:
    """Generated requests for every operation; each answer checked against the document by schemathesis's
    checks (no 5xx, documented status, content type, headers and body; invalid data rejected). Returns the
    operations run.

    Not checked: that every schema-valid body is accepted, since some limits are not expressible in
    JSON Schema (pairs per request, a window's minimum size only when several windows are asked, the
    body's bytes, `truncate: false` with a pair past max_length); those answer the documented 413/422.
    Driven with hypothesis directly: schemathesis's pytest fixture loader does not run under pytest 9.
    """
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        @given(case=operation.as_strategy())
        @_bounded
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, timeout=30, excluded_checks=[positive_data_acceptance])

        check()
    return [operation.label for operation in operations]


ROUTES = {"POST /rerank", "POST /v1/rerank", "POST /v2/rerank", "POST /api/v1/rerank", "POST /api/rerank",
          "GET /health", "GET /info", "GET /v1/models", "GET /metrics", "GET /stats"}


def test_without_a_key(open_schema: schemathesis.BaseSchema) -> None:
    assert set(fuzz_every_operation(open_schema, {})) == ROUTES


def test_with_a_key(keyed_schema: schemathesis.BaseSchema) -> None:
    assert set(fuzz_every_operation(keyed_schema, {"Authorization": f"Bearer {KEY}"})) == ROUTES


def test_with_a_key_but_none_sent(keyed_schema: schemathesis.BaseSchema) -> None:
    """The protected routes answer 401 as documented; the public routes answer as usual."""
    assert set(fuzz_every_operation(keyed_schema, {})) == ROUTES


def test_openapi_publishes_the_error_type_enum(live_server: str) -> None:
    schemas = httpx.get(f"{live_server}/openapi.json", timeout=10).json()["components"]["schemas"]
    assert schemas["ErrorBody"]["properties"]["error_type"] == {"$ref": "#/components/schemas/ErrorType"}
    assert schemas["ErrorType"]["enum"] == WIRE
