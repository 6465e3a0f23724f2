"""The Rerank workflow tool end to end, as Dify runs it: the tool package built and signed, verified, unpacked,
`python -m main` started in it (Python 3.12 + dify-plugin 0.10.x, INSTALL_METHOD=local) and driven with the
daemon's `invoke_tool` / `validate_tool_credentials` JSON lines against live rerank-kit servers on loopback.

`make test` points RERANK_KIT_DIFY_PYTHON at `.venv-dify/bin/python`; without it these tests fail.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from rerank_kit.commands import dify_signature, difypkg
from tests.support import REPO_ROOT
from tests.support.dify_stdio import (
    DOCS,
    QUERY,
    PluginProcess,
    Reply,
    credentials,
    require_dify_python,
    server_ranking,
    unpack,
)
from tests.support.server_process import TEST_API_KEY, free_port

TOOL_PROVIDER, TOOL = "rerank_kit_tools", "rerank"
SERVER_KEY = TEST_API_KEY
SIGNING = REPO_ROOT.parent / "shared" / "reference" / "dify-signature" / "test_key_pair_1"
KNOWLEDGE = [{"content": doc, "title": f"doc-{i}.md", "metadata": {"position": i + 1, "score": 0.5}}
             for i, doc in enumerate(DOCS)]


@pytest.fixture(scope="module")
def signed_package(tmp_path_factory: pytest.TempPathFactory) -> difypkg.Package:
    key = dify_signature.load_private_key(SIGNING.with_name(f"{SIGNING.name}.private.pem"))
    package = difypkg.build(tmp_path_factory.mktemp("dist"), plugin=difypkg.TOOL, sign_key=key)
    dify_signature.verify(package.path, dify_signature.public_keys([SIGNING.with_name(f"{SIGNING.name}.public.pem")]))
    return package


@pytest.fixture(scope="module")
def plugin(signed_package: difypkg.Package, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PluginProcess]:
    root = unpack(signed_package.path, tmp_path_factory.mktemp("tool-root"))
    process = PluginProcess(require_dify_python(), root, tmp_path_factory.mktemp("logs") / "tool.stderr")
    yield process
    process.stop()


def invoke(plugin: PluginProcess, creds: dict[str, str], **parameters: Any) -> Reply:
    return plugin.request({"type": "tool", "action": "invoke_tool", "provider": TOOL_PROVIDER, "tool": TOOL,
                           "credentials": creds, "tool_parameters": {"query": QUERY, **parameters}})


def validate(plugin: PluginProcess, creds: dict[str, str]) -> Reply:
    return plugin.request({"type": "tool", "action": "validate_tool_credentials", "provider": TOOL_PROVIDER,
                           "credentials": creds})


def outputs(reply: Reply) -> tuple[list[dict[str, Any]], str]:
    """The ranked list (checked to be the same in the JSON and the variable message) and the text message."""
    assert reply.error is None, reply.error
    by_type = {stream["type"]: stream["message"] for stream in reply.streams}
    assert sorted(by_type) == ["json", "text", "variable"]
    assert by_type["variable"]["variable_name"] == "ranked"
    assert by_type["json"]["json_object"] == {"ranked": by_type["variable"]["variable_value"]}
    return by_type["variable"]["variable_value"], by_type["text"]["text"]


def test_the_tool_plugin_declares_its_own_manifest(plugin: PluginProcess) -> None:
    assert (plugin.manifest["author"], plugin.manifest["name"]) == ("rerank-kit", TOOL_PROVIDER)
    assert plugin.manifest["plugins"]["tools"] == ["provider/rerank_kit_tools.yaml"]


def test_credentials_are_checked_against_the_live_server(plugin: PluginProcess, live_server: str) -> None:
    assert validate(plugin, credentials(f"{live_server}/v1")).data == {"result": True}


def test_strings_come_back_best_first_with_the_server_scores(plugin: PluginProcess, live_server: str) -> None:
    ranked, text = outputs(invoke(plugin, credentials(live_server), documents=DOCS, top_n=0, score_threshold=0))
    expected = server_ranking(live_server)
    assert [(item["index"], item["score"]) for item in ranked] == expected
    assert [item["document"] for item in ranked] == [DOCS[i] for i, _ in expected]
    assert text == f"Reranked 4 documents; kept 4, best score {expected[0][1]:.3f} (document {expected[0][0]})."


@pytest.mark.parametrize("encode", [lambda items: items, json.dumps, str], ids=["array", "json-text", "dify-text"])
def test_knowledge_retrieval_objects_keep_every_field(plugin: PluginProcess, live_server: str, encode) -> None:
    """Dify's cast of a selected array variable to a string parameter is `str(value)` (the dify-text case)."""
    documents = encode(KNOWLEDGE)
    ranked, _ = outputs(invoke(plugin, credentials(live_server), documents=documents, top_n=3, score_threshold=0.0))
    expected = server_ranking(live_server)[:3]
    assert [(item["index"], item["score"]) for item in ranked] == expected
    assert [item["document"] for item in ranked] == [KNOWLEDGE[i] for i, _ in expected]


def test_top_n_and_threshold_edges(plugin: PluginProcess, live_server: str) -> None:
    expected = server_ranking(live_server)
    creds = credentials(live_server)

    def indices(**parameters: Any) -> list[int]:
        return [item["index"] for item in outputs(invoke(plugin, creds, documents=DOCS, **parameters))[0]]

    everything = [i for i, _ in expected]
    assert indices(top_n=0, score_threshold=0.0) == everything  # what Dify sends for unset fields
    assert indices(top_n=None, score_threshold=None) == everything
    assert indices(top_n=2) == everything[:2]
    assert indices(top_n=len(DOCS) + 10) == everything
    between = (expected[1][1] + expected[2][1]) / 2
    assert indices(top_n=0, score_threshold=between) == everything[:2]
    assert indices(top_n=1, score_threshold=between) == everything[:1]
    ranked, text = outputs(invoke(plugin, creds, documents=DOCS, score_threshold=1.0))
    assert ranked == [] and text == "Reranked 4 documents; none kept."


def test_no_documents_give_empty_outputs_without_a_server(plugin: PluginProcess) -> None:
    dead = credentials(f"http://127.0.0.1:{free_port()}")
    ranked, text = outputs(invoke(plugin, dead, documents="[]"))
    assert ranked == [] and text == "No documents to rerank."


@pytest.mark.parametrize(("parameters", "message"), [
    ({"documents": "paris, london"}, "documents is text but not an array in JSON or Python literal form"),
    ({"documents": [{"title": "no text"}]}, "documents[0] has no content or text field"),
    ({"documents": DOCS, "top_n": 1.5}, "top_n must be a whole number"),
    ({"documents": DOCS, "score_threshold": 2}, "score_threshold must be between 0 and 1"),
    ({"documents": DOCS, "query": "  "}, "query is empty"),
])
def test_bad_parameters_fail_the_tool_with_what_to_fix(plugin: PluginProcess, live_server: str,
                                                       parameters: dict[str, Any], message: str) -> None:
    reply = invoke(plugin, credentials(live_server), **parameters)
    assert reply.error is not None and reply.error["error_type"] == "InvalidInputError"
    assert message in reply.error["message"]


def test_the_model_parameter_names_the_served_model(plugin: PluginProcess, live_server: str) -> None:
    served = httpx.get(f"{live_server}/info").json()["model_id"]
    ranked, _ = outputs(invoke(plugin, credentials(live_server), documents=DOCS, model=served))
    assert [(item["index"], item["score"]) for item in ranked] == server_ranking(live_server)


def test_a_dead_server_fails_with_the_hint(plugin: PluginProcess) -> None:
    dead = credentials(f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    reply = invoke(plugin, dead, documents=DOCS)
    assert time.monotonic() - started < 10
    assert reply.error is not None and reply.error["error_type"] == "ConnectionFailedError"
    assert "rerank-kit serve" in reply.error["message"]
    checked = validate(plugin, dead)
    assert checked.error is not None and checked.error["error_type"] == "ToolProviderCredentialValidationError"
    assert "cannot connect" in checked.error["message"]


def test_a_wrong_key_fails_with_the_hint_and_the_right_one_works(plugin: PluginProcess, keyed_server: str) -> None:
    wrong = credentials(keyed_server, api_key="not-the-key")
    checked = validate(plugin, wrong)
    assert checked.error is not None and checked.error["error_type"] == "ToolProviderCredentialValidationError"
    assert "RERANK_API_KEY" in checked.error["message"] and "not-the-key" not in checked.error["message"]
    reply = invoke(plugin, wrong, documents=DOCS)
    assert reply.error is not None and reply.error["error_type"] == "AuthError"
    assert "RERANK_API_KEY" in reply.error["message"] and "not-the-key" not in reply.error["message"]
    right = credentials(keyed_server, SERVER_KEY)
    assert validate(plugin, right).data == {"result": True}
    assert len(outputs(invoke(plugin, right, documents=DOCS, top_n=1))[0]) == 1


def test_a_malformed_form_value_is_refused_before_any_request(plugin: PluginProcess, live_server: str) -> None:
    checked = validate(plugin, {**credentials(live_server), "timeout": "soon"})
    assert checked.error is not None and "timeout must be a number" in checked.error["message"]
