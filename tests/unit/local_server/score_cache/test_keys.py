"""Cache keys separate what must differ: the model's files (not its name), backend and precision, the settings
and options that change a score, the query, the document, the API key; and they hold no text."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from local_server.score_cache.keys import document_keys, model_identity, partition
from local_server.settings import Settings

OPTIONS = {"truncate": True, "direction": "right", "max_tokens_per_doc": None, "max_chunks_per_doc": 1,
           "instruction": None}


def loaded(**changes: str) -> SimpleNamespace:
    """What model_identity reads of a LoadedModel."""
    facts = {"family": "cross-encoder", "backend": "onnx", "device": "cpu", "dtype": "float32", "variant": ""} | changes
    return SimpleNamespace(family=SimpleNamespace(name=facts["family"]), backend=SimpleNamespace(name=facts["backend"]),
                           device=facts["device"], dtype=facts["dtype"], variant=facts["variant"])


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "served-name"
    folder.mkdir()
    for name, text in (("config.json", "{}"), ("model.safetensors", "weights"), ("tokenizer.json", "{}")):
        (folder / name).write_text(text)
    return folder


def identity(folder: Path, **settings: object) -> bytes:
    return model_identity(loaded(), Settings(model=str(folder), **settings))  # type: ignore[arg-type]


def test_the_same_name_from_other_files_is_another_model(model: Path, tmp_path: Path) -> None:
    first = identity(model)
    assert identity(model) == first  # stable: replicas on one volume share entries
    twin = tmp_path / "elsewhere" / model.name
    shutil.copytree(model, twin)
    assert identity(twin) != first  # same folder name and bytes, other files
    weights = model / "model.safetensors"
    weights.write_text("retrained")
    os.utime(weights, ns=(1, 1))
    assert identity(model) != first  # the weights were replaced in place
    (model / "model.safetensors").write_text("weights")  # a tokenizer change alone changes scores too
    before = identity(model)
    (model / "tokenizer.json").write_text('{"changed": 1}')
    assert identity(model) != before


@pytest.mark.parametrize("change", [{"backend": "torch"}, {"dtype": "int8"}, {"dtype": "float16"},
                                    {"variant": "int8-reduce-range"}, {"device": "cuda"}, {"family": "qwen3"}])
def test_backend_precision_device_and_family_separate_entries(model: Path, change: dict[str, str]) -> None:
    settings = Settings(model=str(model))
    assert model_identity(loaded(**change), settings) != model_identity(loaded(), settings)


@pytest.mark.parametrize("setting", [{"max_length": 256}, {"query_max_length": 64}, {"instruction": "Judge it"},
                                     {"cutoff_layers": [8]}])
def test_settings_that_change_a_score_separate_entries(model: Path, setting: dict[str, object]) -> None:
    assert identity(model, **setting) != identity(model)


@pytest.mark.parametrize("setting", [{"max_batch_tokens": 4096}, {"lazy_load": True}, {"idle_unload_s": 60.0},
                                     {"max_docs": 10}, {"port": 1234}])
def test_settings_that_never_change_a_score_share_entries(model: Path, setting: dict[str, object]) -> None:
    assert identity(model, **setting) == identity(model)


def test_options_query_document_and_api_key_separate_keys() -> None:
    base = document_keys(b"model", b"", "query", ["a document"], OPTIONS)[0]
    variants = [document_keys(b"other model", b"", "query", ["a document"], OPTIONS),
                document_keys(b"model", partition("key"), "query", ["a document"], OPTIONS),
                document_keys(b"model", b"", "query 2", ["a document"], OPTIONS),
                document_keys(b"model", b"", "query", ["a document."], OPTIONS),
                document_keys(b"model", b"", "querya", [" document"], OPTIONS)]  # no ambiguity at the join
    variants += [document_keys(b"model", b"", "query", ["a document"], OPTIONS | change)
                 for change in ({"truncate": False}, {"direction": "left"}, {"max_tokens_per_doc": 100},
                                {"max_chunks_per_doc": 2}, {"instruction": "Find the answer"})]
    keys = [base] + [found[0] for found in variants]
    assert len(set(keys)) == len(keys)
    assert partition("key") != partition("other key") and partition(None) == b""


def test_a_key_is_a_128_bit_hash_holding_no_text() -> None:
    text = "the secret quarterly figures"
    (key,) = document_keys(b"model", b"", "what were the figures", [text], OPTIONS)
    assert len(key) == 16 and text.encode() not in key
    assert document_keys(b"model", b"", "q", ["lone \ud800 surrogate"], OPTIONS)  # any JSON string hashes
