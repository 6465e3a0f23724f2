"""Unit tests of the plugin's provider and rerank model classes, with the server mocked by respx."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import respx
from dify_plugin.entities.model import ModelPropertyKey
from dify_plugin.entities.model.provider import ConfigurateMethod
from dify_plugin.entities.model.text_embedding import MultiModalContent
from dify_plugin.errors.model import (
    CredentialsValidateFailedError,
    InvokeAuthorizationError,
    InvokeBadRequestError,
    InvokeConnectionError,
    InvokeRateLimitError,
    InvokeServerUnavailableError,
)

from rerank_kit.protocol import RerankResponse, RerankResult, ServerInfo, Usage

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER = "http://rerank.test:8086"
MODEL = "BAAI/bge-reranker-v2-m3"
DOCS = ["doc zero", "doc one", "doc two", "doc three"]
SCORES = [0.10, 0.95, 0.40, 0.70]  # best first: 1, 3, 2, 0


def info(**fields) -> dict:
    return ServerInfo(model_id=MODEL, server="rerank-kit", max_docs=100, max_input_length=8192,
                      **fields).model_dump()


def ranked(scores: list[float], top_n: int | None = None) -> dict:
    order = sorted(range(len(scores)), key=lambda i: -scores[i])[: top_n or None]
    results = [RerankResult(index=i, relevance_score=scores[i]) for i in order]
    return RerankResponse(model=MODEL, results=results, usage=Usage(total_tokens=42)).model_dump()


@pytest.fixture
def credentials() -> dict[str, str]:
    return {"server_url": SERVER, "api_key": "", "timeout": "5", "max_retries": "0"}


@pytest.fixture
def server():
    """A rerank-kit server double: /info, and /rerank honouring top_n like the real one."""
    with respx.mock(base_url=SERVER, assert_all_called=False) as mock:
        mock.get("/info", name="info").respond(json=info())

        def rerank(request: httpx.Request) -> httpx.Response:
            body = json.loads(request.content)
            scores = [SCORES[DOCS.index(doc)] if doc in DOCS else 0.5 for doc in body["documents"]]
            return httpx.Response(200, json=ranked(scores, body.get("top_n")))

        mock.post("/rerank", name="rerank").mock(side_effect=rerank)
        yield mock


@pytest.fixture(autouse=True)
def fresh_shared_clients(rerank_model):
    """Each test starts without the plugin's cached clients (they would remember another test's server)."""
    type(rerank_model)._invoke.__globals__["shared_client"].cache_clear()  # the plugin module, loaded by path


def last_body(mock: respx.Router) -> dict:
    return json.loads(mock["rerank"].calls.last.request.content)


def test_import_dify_plugin_from_the_repo_root_is_the_sdk() -> None:
    probe = "import dify_plugin; print(dify_plugin.__file__); print(dify_plugin.RerankModel.__name__)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    sdk_file, rerank_class = out.stdout.split()
    assert "site-packages" in Path(sdk_file).parts
    assert rerank_class == "RerankModel"
    assert not (REPO_ROOT / "dify_plugin" / "__init__.py").exists()


def test_provider_declares_predefined_and_customizable_rerank_models(provider) -> None:
    schema = provider.get_provider_schema()
    assert set(schema.configurate_methods) == {ConfigurateMethod.PREDEFINED_MODEL,
                                               ConfigurateMethod.CUSTOMIZABLE_MODEL}
    sizes = {m.model: m.model_properties[ModelPropertyKey.CONTEXT_SIZE] for m in schema.models}
    assert sizes == {"BAAI/bge-reranker-v2-m3": 8192, "BAAI/bge-reranker-large": 512,
                     "BAAI/bge-reranker-base": 512}
    forms = {f.variable: f for f in schema.model_credential_schema.credential_form_schemas}
    assert forms["server_url"].default == "http://host.docker.internal:8086"
    assert forms["api_key"].type.value == "secret-input" and not forms["api_key"].required
    assert [f.variable for f in schema.provider_credential_schema.credential_form_schemas] == list(forms)


def test_invoke_returns_sorted_documents_with_original_indices_and_text(rerank_model, credentials, server) -> None:
    result = rerank_model.invoke(MODEL, credentials, "query", DOCS, score_threshold=None, top_n=None)
    assert [(d.index, d.text, d.score) for d in result.docs] == [
        (1, "doc one", 0.95), (3, "doc three", 0.70), (2, "doc two", 0.40), (0, "doc zero", 0.10)]
    assert result.model == MODEL
    assert "top_n" not in last_body(server)


@pytest.mark.parametrize(("top_n", "threshold", "expected", "sent_top_n"), [
    (0, 0.0, [1, 3, 2, 0], None),  # the daemon's "unset" values
    (None, None, [1, 3, 2, 0], None),
    (2, 0.0, [1, 3], 2),
    (0, 0.5, [1, 3], None),
    (3, 0.5, [1, 3], 3),
    (1, 0.99, [], 1),
    (-1, 0.0, [1, 3, 2, 0], None),
])
def test_top_n_and_score_threshold(rerank_model, credentials, server, top_n, threshold, expected,
                                   sent_top_n) -> None:
    result = rerank_model.invoke(MODEL, credentials, "query", DOCS, score_threshold=threshold, top_n=top_n)
    assert [d.index for d in result.docs] == expected
    assert last_body(server).get("top_n") == sent_top_n


def test_empty_docs_make_no_request(rerank_model, credentials, server) -> None:
    assert rerank_model.invoke(MODEL, credentials, "query", [], 0.0, 0).docs == []
    assert not server["rerank"].called


def test_no_authorization_header_without_a_key_and_bearer_with_one(rerank_model, credentials, server) -> None:
    rerank_model.invoke(MODEL, credentials, "query", DOCS)
    assert "authorization" not in server["rerank"].calls.last.request.headers
    rerank_model.invoke(MODEL, {**credentials, "api_key": "s3cret"}, "query", DOCS)
    assert server["rerank"].calls.last.request.headers["authorization"] == "Bearer s3cret"


@pytest.mark.parametrize(("response", "expected"), [
    (httpx.Response(401, json={"error": "bad key", "error_type": "auth"}), InvokeAuthorizationError),
    (httpx.Response(403, json={"error": "forbidden", "error_type": "auth"}), InvokeAuthorizationError),
    (httpx.Response(429, json={"error": "busy", "error_type": "overloaded"}), InvokeRateLimitError),
    # rerank-kit's answer when its queue is full: Dify must show "rate limited", not "server unavailable"
    (httpx.Response(503, headers={"Retry-After": "1"}, json={"error": "queue full", "error_type": "overloaded"}),
     InvokeRateLimitError),
    (httpx.Response(503, json={"error": "shutting down", "error_type": "unavailable"}), InvokeServerUnavailableError),
    (httpx.Response(500, json={"error": "boom", "error_type": "server"}), InvokeServerUnavailableError),
    (httpx.Response(413, json={"error": "too many", "error_type": "too_many_documents"}), InvokeBadRequestError),
    (httpx.Response(200, html="<html>a web page</html>"), InvokeBadRequestError),  # not a reranker
    (httpx.ConnectError("Connection refused"), InvokeConnectionError),
    (httpx.ReadTimeout("timed out"), InvokeConnectionError),
    (httpx.RemoteProtocolError("Server disconnected without sending a response."), InvokeConnectionError),
])
def test_client_errors_map_onto_dify_invoke_errors(rerank_model, credentials, server, response, expected) -> None:
    server["rerank"].mock(side_effect=[response])
    with pytest.raises(expected):
        rerank_model.invoke(MODEL, credentials, "query", DOCS)


@pytest.mark.parametrize(("change", "message"), [
    ({"timeout": "soon"}, "timeout must be a number"),  # a configuration error
    ({"server_url": "http://"}, "has no host"),  # a configuration error
])
def test_unusable_settings_at_invoke_are_bad_requests(rerank_model, credentials, change, message) -> None:
    with respx.mock(), pytest.raises(InvokeBadRequestError, match=message):  # nothing may be sent
        rerank_model.invoke(MODEL, {**credentials, **change}, "query", DOCS)


def test_a_server_serving_no_reranker_is_a_bad_request(rerank_model, credentials, server) -> None:
    server["info"].respond(json=info(model_type={"embedding": {}}))
    with pytest.raises(InvokeBadRequestError, match="not a reranker"):
        rerank_model.invoke(MODEL, credentials, "query", DOCS)
    assert not server["rerank"].called


def test_a_connection_error_keeps_the_clients_hint(rerank_model, credentials) -> None:
    with respx.mock() as mock:
        mock.route(host="host.docker.internal").mock(side_effect=httpx.ConnectError("Connection refused"))
        with pytest.raises(InvokeConnectionError, match=r"host\.docker\.internal only resolves inside Docker"):
            rerank_model.invoke(MODEL, {**credentials, "server_url": "http://host.docker.internal:8086"}, "q", DOCS)


def test_validate_credentials_checks_the_server_and_keeps_its_context_size(rerank_model, credentials,
                                                                          server) -> None:
    rerank_model.validate_credentials(MODEL, credentials)
    assert credentials["context_size"] == 8192
    assert server["rerank"].called  # a real probe rerank, not only /info
    schema = rerank_model.get_customizable_model_schema("my-reranker", credentials)
    assert schema.model_properties[ModelPropertyKey.CONTEXT_SIZE] == 8192


@pytest.mark.parametrize(("setup", "message"), [
    (lambda m: m.get("/info").respond(401, json={"error": "no", "error_type": "auth"}), "RERANK_API_KEY"),
    (lambda m: m.get("/info").respond(json=info(model_type={"embedding": {}})), "not a reranker"),
    (lambda m: m.get("/info").mock(side_effect=httpx.ConnectError("refused")), "cannot connect"),
])
def test_validate_credentials_fails_with_the_clients_hint(rerank_model, credentials, server, setup,
                                                          message) -> None:
    setup(server)
    with pytest.raises(CredentialsValidateFailedError, match=message):
        rerank_model.validate_credentials(MODEL, credentials)


def test_validate_credentials_names_the_model_the_server_serves(rerank_model, credentials, server) -> None:
    with pytest.raises(CredentialsValidateFailedError, match=f"set the model name to {MODEL}"):
        rerank_model.validate_credentials("gpt-4o", credentials)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("timeout", "soon", "timeout must be a number"),
    ("max_retries", "-1", "max_retries must not be negative"),
    ("server_url", "http://", "has no host"),
])
def test_malformed_credentials_fail_validation_clearly(rerank_model, credentials, field, value, message) -> None:
    with respx.mock(), pytest.raises(CredentialsValidateFailedError, match=message):  # nothing may be sent
        rerank_model.validate_credentials(MODEL, {**credentials, field: value})


def test_provider_credentials_are_checked_against_the_server(provider, credentials, server) -> None:
    provider.validate_provider_credentials(credentials)
    assert server["rerank"].called
    server.get("/info").respond(401, json={"error": "no", "error_type": "auth"})
    with pytest.raises(CredentialsValidateFailedError, match="RERANK_API_KEY"):
        provider.validate_provider_credentials(credentials)


def test_multimodal_rerank_of_text_contents(rerank_model, credentials, server) -> None:
    docs = [MultiModalContent(content=d, content_type="text") for d in DOCS]
    query = MultiModalContent(content="query", content_type="text")
    result = rerank_model.invoke_multimodal(MODEL, credentials, query, docs, score_threshold=0.0, top_n=2)
    assert [(d.index, d.text) for d in result.docs] == [(1, "doc one"), (3, "doc three")]


def test_multimodal_rerank_refuses_images_before_any_request(rerank_model, credentials, server) -> None:
    docs = [MultiModalContent(content="iVBORw0KGgo=", content_type="image")]
    query = MultiModalContent(content="query", content_type="text")
    with pytest.raises(InvokeBadRequestError, match="image content cannot be reranked"):
        rerank_model.invoke_multimodal(MODEL, credentials, query, docs)
    assert not server["rerank"].called


def test_nothing_is_printed_to_stdout(rerank_model, credentials, server, capfd) -> None:
    rerank_model.validate_credentials(MODEL, credentials)
    rerank_model.invoke(MODEL, credentials, "query", DOCS, 0.0, 2)
    server["rerank"].mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(InvokeConnectionError):
        rerank_model.invoke(MODEL, credentials, "query", DOCS)
    assert capfd.readouterr().out == ""


def test_invokes_reuse_one_client_so_the_server_is_probed_once(rerank_model, credentials, server) -> None:
    for _ in range(3):
        rerank_model.invoke(MODEL, credentials, "query", DOCS, score_threshold=None, top_n=None)
    assert server["info"].call_count == 1  # the detection probe, once for the plugin's lifetime
    assert server["rerank"].call_count == 3
    rerank_model.invoke(MODEL, {**credentials, "timeout": "7"}, "query", DOCS)  # new settings, new client
    assert server["info"].call_count == 2
