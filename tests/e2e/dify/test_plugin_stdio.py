"""End to end, as Dify runs the plugin: build the .difypkg, unpack it, start `python -m main` in it
(Python 3.12 + dify-plugin 0.10.x, INSTALL_METHOD=local) and speak the daemon's stdin/stdout JSON lines
to it, against real rerank-kit servers on loopback.

`make test` points RERANK_KIT_DIFY_PYTHON at `.venv-dify/bin/python`; without it these tests fail.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rerank_kit.commands import difypkg
from rerank_kit.protocol import ErrorBody, ServerInfo
from tests.support.dify_stdio import (
    DOCS,
    PROVIDER,
    QUERY,
    PluginProcess,
    credentials,
    model_request,
    ranking,
    require_dify_python,
    rerank_request,
    server_ranking,
    unpack,
)
from tests.support.server_process import TEST_API_KEY, QuietHandler, free_port, serving

SERVER_KEY = TEST_API_KEY


@pytest.fixture(scope="module")
def dify_python() -> str:
    return require_dify_python()


@pytest.fixture(scope="module")
def plugin_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return unpack(difypkg.build(tmp_path_factory.mktemp("dist")).path, tmp_path_factory.mktemp("plugin-root"))


@pytest.fixture(scope="module")
def plugin(dify_python: str, plugin_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PluginProcess]:
    process = PluginProcess(dify_python, plugin_root, tmp_path_factory.mktemp("logs") / "plugin.stderr")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def served_model(live_server: str) -> str:
    return httpx.get(f"{live_server}/info").json()["model_id"]


def unavailable_server(headers: dict[str, str]) -> contextlib.AbstractContextManager[str]:
    """A rerank-kit double whose /rerank always answers 503 with `headers` (Retry-After: its queue is full)."""

    class Unavailable(QuietHandler):
        def do_GET(self) -> None:
            self._reply(200, ServerInfo(model_id="tiny", server="rerank-kit").model_dump_json().encode())

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self._reply(503, ErrorBody(error="busy", error_type="Overloaded").model_dump_json().encode(), headers)

    return serving(Unavailable)


def test_the_packaged_client_is_the_one_the_plugin_imports(dify_python: str, plugin_root: Path) -> None:
    probe = "import dify_plugin, rerank_kit.client as c; print(c.__file__); print(dify_plugin.__file__)"
    out = subprocess.run([dify_python, "-c", probe], cwd=plugin_root, capture_output=True, text=True, check=True)
    client_file, sdk_file = map(Path, out.stdout.split())
    assert client_file == plugin_root / "rerank_kit" / "client" / "__init__.py"  # the bundled package
    assert "site-packages" in sdk_file.parts


def test_plugin_declares_its_manifest_first(plugin: PluginProcess) -> None:
    assert (plugin.manifest["author"], plugin.manifest["name"]) == ("rerank-kit", PROVIDER)
    assert plugin.manifest["meta"]["runner"]["version"] == "3.12"


def test_validate_provider_credentials_checks_the_live_server(plugin: PluginProcess, live_server: str) -> None:
    reply = plugin.request({"type": "model", "action": "validate_provider_credentials", "provider": PROVIDER,
                            "credentials": credentials(live_server)})
    assert reply.data["result"] is True


def test_validate_model_credentials_stores_the_server_context_size(
        plugin: PluginProcess, live_server: str, served_model: str) -> None:
    reply = plugin.request(model_request("validate_model_credentials", served_model,
                                         credentials(f"{live_server}/v1/")))
    info = httpx.get(f"{live_server}/info").json()
    assert reply.data["result"] is True
    assert reply.data["credentials"]["context_size"] == info["max_input_length"]


def test_a_model_the_server_does_not_serve_fails_validation_with_the_fix(
        plugin: PluginProcess, live_server: str, served_model: str) -> None:
    reply = plugin.request(model_request("validate_model_credentials", "no-such-reranker", credentials(live_server)))
    assert reply.error is not None and reply.error["error_type"] == "CredentialsValidateFailedError"
    assert f"set the model name to {served_model}" in reply.error["message"]


def test_invoke_rerank_with_top_n_returns_the_server_scores(
        plugin: PluginProcess, live_server: str, served_model: str) -> None:
    reply = plugin.request(rerank_request(served_model, credentials(live_server), top_n=2, score_threshold=0.0))
    assert ranking(reply) == server_ranking(live_server)[:2]
    assert [doc["text"] for doc in reply.data["docs"]] == [DOCS[i] for i, _ in ranking(reply)]
    assert reply.data["model"] == served_model


def test_unset_top_n_and_threshold_keep_every_document(
        plugin: PluginProcess, live_server: str, served_model: str) -> None:
    reply = plugin.request(rerank_request(served_model, credentials(live_server), top_n=0, score_threshold=0.0))
    assert ranking(reply) == server_ranking(live_server)
    assert sorted(i for i, _ in ranking(reply)) == list(range(len(DOCS)))


def test_score_threshold_drops_the_documents_below_it(
        plugin: PluginProcess, live_server: str, served_model: str) -> None:
    expected = server_ranking(live_server)
    threshold = (expected[1][1] + expected[2][1]) / 2  # between the 2nd and 3rd scores
    reply = plugin.request(rerank_request(served_model, credentials(live_server), top_n=0,
                                          score_threshold=threshold))
    assert ranking(reply) == expected[:2]


def test_multimodal_rerank_takes_text_and_refuses_images(
        plugin: PluginProcess, live_server: str, served_model: str) -> None:
    def contents(kind: str) -> dict[str, Any]:
        return {"query": {"content": QUERY, "content_type": "text"},
                "docs": [{"content": doc, "content_type": kind} for doc in DOCS],
                "top_n": 3, "score_threshold": None}

    text = plugin.request(model_request("invoke_multimodal_rerank", served_model, credentials(live_server),
                                        **contents("text")))
    assert ranking(text) == server_ranking(live_server)[:3]
    image = plugin.request(model_request("invoke_multimodal_rerank", served_model, credentials(live_server),
                                         **contents("image")))
    assert image.error is not None and image.error["error_type"] == "InvokeBadRequestError"
    assert "image content cannot be reranked" in image.error["message"]


def test_an_unreachable_server_fails_with_a_connection_error_and_a_hint(
        plugin: PluginProcess, served_model: str) -> None:
    dead = credentials(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    started = time.monotonic()
    invoke = plugin.request(rerank_request(served_model, dead, top_n=0, score_threshold=0.0))
    # Well inside the plugin's 60 s timeout: two retries with backoff, then the error (Dify waits for it).
    assert time.monotonic() - started < 10
    assert invoke.error is not None and invoke.error["error_type"] == "InvokeConnectionError"
    assert "rerank-kit serve" in invoke.error["message"]
    validate = plugin.request({"type": "model", "action": "validate_provider_credentials", "provider": PROVIDER,
                               "credentials": dead})
    assert validate.error is not None and validate.error["error_type"] == "CredentialsValidateFailedError"
    assert "cannot connect" in validate.error["message"]


def test_a_wrong_key_is_refused_and_the_right_one_accepted(
        plugin: PluginProcess, keyed_server: str, served_model: str) -> None:
    wrong = credentials(keyed_server, api_key="not-the-key")
    validate = plugin.request(model_request("validate_model_credentials", served_model, wrong))
    assert validate.error is not None and validate.error["error_type"] == "CredentialsValidateFailedError"
    assert "RERANK_API_KEY" in validate.error["message"]
    assert "not-the-key" not in validate.error["message"]
    invoke = plugin.request(rerank_request(served_model, wrong, top_n=0, score_threshold=0.0))
    assert invoke.error is not None and invoke.error["error_type"] == "InvokeAuthorizationError"
    right = plugin.request(rerank_request(served_model, credentials(keyed_server, SERVER_KEY), top_n=1,
                                          score_threshold=0.0))
    assert len(right.data["docs"]) == 1


@pytest.mark.parametrize(("headers", "error_type"), [({"Retry-After": "0"}, "InvokeRateLimitError"),
                                                     ({}, "InvokeServerUnavailableError")])
def test_an_overloaded_server_is_rate_limited_and_an_unavailable_one_is_not(
        plugin: PluginProcess, headers: dict[str, str], error_type: str) -> None:
    """Dify sees "rate limited" for rerank-kit's full queue (503 + Retry-After), after the client's retry."""
    with unavailable_server(headers) as url:
        reply = plugin.request(rerank_request("tiny", credentials(url), top_n=0, score_threshold=0.0))
    assert reply.error is not None and reply.error["error_type"] == error_type
    assert "HTTP 503 from the rerank server: busy" in reply.error["message"]


def test_model_schemas_carry_the_context_size(plugin: PluginProcess, live_server: str, served_model: str) -> None:
    validated = plugin.request(model_request("validate_model_credentials", served_model, credentials(live_server)))
    custom = plugin.request(model_request("get_ai_model_schemas", served_model, validated.data["credentials"]))
    assert custom.data["model_schema"]["model_properties"]["context_size"] == validated.data["credentials"][
        "context_size"]
    assert custom.data["model_schema"]["fetch_from"] == "customizable-model"
    predefined = plugin.request(model_request("get_ai_model_schemas", "BAAI/bge-reranker-v2-m3",
                                              credentials(live_server)))
    assert predefined.data["model_schema"]["model_properties"]["context_size"] == 8192


def test_each_served_model_is_a_dify_model_and_validation_names_them(
        plugin: PluginProcess, multi_model_server: str) -> None:
    """One server serving five models (one per family): each name is a model of its own; an unknown name lists
    the served ones."""
    creds = credentials(multi_model_server)
    for model in ("minilm", "gemma", "qwen3", "minicpm", "gemma2-lite"):
        assert plugin.request(model_request("validate_model_credentials", model, creds)).data["result"] is True
        reply = plugin.request(rerank_request(model, creds, top_n=0, score_threshold=0.0))
        body = httpx.post(f"{multi_model_server}/rerank", json={"model": model, "query": QUERY, "documents": DOCS})
        assert ranking(reply) == [(r["index"], r["relevance_score"]) for r in body.json()["results"]], model
    reply = plugin.request(model_request("validate_model_credentials", "bge-reranker-v2-m3", creds))
    assert reply.error is not None and reply.error["error_type"] == "CredentialsValidateFailedError"
    assert "set the model name to one of minilm, gemma, qwen3, minicpm, gemma2-lite" in reply.error["message"]
