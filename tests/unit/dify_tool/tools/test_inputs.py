"""The Rerank tool's parameter reading (dify_tool/tools/inputs.py): every shape Dify passes, and the errors."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from types import ModuleType

import pytest

from rerank_kit.errors import InvalidInputError
from tests.support import REPO_ROOT

SOURCE = REPO_ROOT / "dify_tool" / "tools" / "inputs.py"
KNOWLEDGE = [  # two items of a Knowledge Retrieval node's `result`
    {"content": "paris is the capital of france", "title": "France.md", "metadata": {"score": 0.41, "position": 1}},
    {"content": "the cat sat on the mat", "title": "Cats.md", "metadata": {"score": 0.38, "position": 2}},
]


def _load() -> ModuleType:
    """The helper as the plugin has it (a source file, not an installed module); it needs no SDK."""
    spec = importlib.util.spec_from_file_location("rerank_tool_inputs", SOURCE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


inputs = _load()


@pytest.mark.parametrize("value", [
    ["a", "b"], json.dumps(["a", "b"]), f"  {json.dumps(['a', 'b'])}\n", str(["a", "b"]), {"result": ["a", "b"]},
], ids=["array", "json-text", "json-text-padded", "python-repr", "node-output-object"])
def test_strings_as_the_array_or_its_json_text(value) -> None:
    assert [(d.text, d.item) for d in inputs.parse_documents(value)] == [("a", "a"), ("b", "b")]


# What Dify sends for a selected array variable or an array of objects in a template: str(value), not JSON.
DIFY_TEXT = str([{**item, "metadata": {**item["metadata"], "doc_metadata": None, "child_chunks": []}}
                 for item in KNOWLEDGE])


@pytest.mark.parametrize("value", [KNOWLEDGE, json.dumps(KNOWLEDGE), str(KNOWLEDGE)],
                         ids=["array", "json-text", "python-repr"])
def test_knowledge_retrieval_objects_rerank_their_content_and_keep_every_field(value) -> None:
    documents = inputs.parse_documents(value)
    assert [d.text for d in documents] == [item["content"] for item in KNOWLEDGE]
    assert [d.item for d in documents] == KNOWLEDGE


def test_dify_s_python_text_keeps_none_and_nested_values() -> None:
    items = [d.item for d in inputs.parse_documents(DIFY_TEXT)]
    assert items[0]["metadata"] == {"score": 0.41, "position": 1, "doc_metadata": None, "child_chunks": []}


def test_python_text_is_read_as_literals_never_run() -> None:
    with pytest.raises(InvalidInputError, match="not an array in JSON or Python literal form"):
        inputs.parse_documents("[__import__('os').getcwd()]")


def test_text_objects_and_strings_mix() -> None:
    documents = inputs.parse_documents([{"text": "x", "id": 7}, "y"])
    assert [(d.text, d.item) for d in documents] == [("x", {"text": "x", "id": 7}), ("y", "y")]


@pytest.mark.parametrize("value", [None, "", "   ", [], "[]"])
def test_nothing_to_rerank(value) -> None:
    assert inputs.parse_documents(value) == []


@pytest.mark.parametrize(("value", "message"), [
    ("paris; london", "documents is text but not an array in JSON or Python literal form (Expecting value at"),
    ('{"a": 1}', "documents must be an array, got dict"),
    (42, "documents must be an array, got int"),
    (["a", None], "documents[1] must be a string or an object, got NoneType"),
    ([{"title": "t", "url": "u"}], "documents[0] has no content or text field (its fields: title, url)"),
    ([{"content": 3}], "documents[0].content must be text, got int"),
])
def test_unusable_documents_say_what_and_where(value, message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        inputs.parse_documents(value)
    assert message in str(caught.value) and "Knowledge Retrieval node's result" in str(caught.value)


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), (0, None), (0.0, None), ("", None), ("0", None), (-1, None), (3, 3), (3.0, 3), ("3", 3), (100, 100),
])
def test_top_n_unset_means_all(value, expected) -> None:
    assert inputs.top_n(value) == expected


@pytest.mark.parametrize(("value", "message"), [
    (2.5, "top_n must be a whole number"), ("two", "top_n must be a number"), (True, "top_n must be a number"),
    (math.inf, "top_n must be a finite number"),
])
def test_top_n_refuses_what_is_not_a_count(value, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        inputs.top_n(value)


@pytest.mark.parametrize(("value", "expected"), [(None, None), (0, None), (0.0, None), ("", None), (0.5, 0.5),
                                                  ("0.25", 0.25), (1, 1.0)])
def test_score_threshold_unset_means_none(value, expected) -> None:
    assert inputs.score_threshold(value) == expected


@pytest.mark.parametrize(("value", "message"), [
    (1.5, "score_threshold must be between 0 and 1"), (-0.1, "score_threshold must be between 0 and 1"),
    (math.nan, "score_threshold must be a finite number"), ([0.5], "score_threshold must be a number"),
])
def test_score_threshold_refuses_what_no_score_can_meet(value, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        inputs.score_threshold(value)
