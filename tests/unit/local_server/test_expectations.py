"""The start-up expectation: a few pairs timed through the real engine, scaled to a 20-passage request, and
a warning that names the timeouts it would miss and what would fit."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from local_server import expectations
from local_server.backends import load_backend
from local_server.engine import RerankEngine
from local_server.expectations import Expectation, log_expectation, measure
from local_server.settings import Settings


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> RerankEngine:
    settings = Settings(model=str(tiny_model_dir), offline=True, backend="torch")
    return RerankEngine(load_backend(settings), settings)


def test_the_measurement_runs_the_engine_and_scales_to_a_request(engine: RerankEngine,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    batches: list[int] = []
    logits = engine.logits
    monkeypatch.setattr(engine, "logits", lambda pairs: batches.append(len(pairs)) or logits(pairs))
    expectation = measure(engine, sample_pairs=4)
    assert batches[0] == 1 and sum(batches[1:]) == 4  # one warm-up pair, then the timed sample
    assert 0 < expectation.seconds < 60 and expectation.missed == ()


def test_a_slow_machine_is_told_what_would_fit() -> None:
    slow = Expectation(12.0, ("Dify's built-in TEI provider", "RAGFlow's add-model check (LLM_TIMEOUT_SECONDS)"))
    message = slow.message("bge-reranker-v2-m3", "torch", "float32")
    assert "about 12.0 s" in message and "Dify's built-in TEI provider" in message
    assert "RERANK_BACKEND=auto" in message and "RERANK_ONNX_QUANTIZE=int8" in message
    on_int8 = slow.message("bge-reranker-v2-m3", "onnx", "int8")
    assert "RERANK_BACKEND" not in on_int8 and "int8 (" not in on_int8 and "smaller model" in on_int8
    assert "within every integration" in Expectation(0.4, ()).message("m", "onnx", "float32")


def test_the_log_line_is_a_warning_only_when_a_timeout_would_be_missed(engine: RerankEngine,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="local_server"):
        log_expectation(engine, "tiny")
    (record,) = [r for r in caplog.records if r.name == "local_server.expectations"]
    assert record.levelno == logging.INFO and "20 passages" in record.getMessage()
    caplog.clear()
    monkeypatch.setattr(expectations, "TIMEOUTS", (("an impatient integration", 0.0),))
    with caplog.at_level(logging.INFO, logger="local_server"):
        assert log_expectation(engine, "tiny").missed == ("an impatient integration",)
    (record,) = [r for r in caplog.records if r.name == "local_server.expectations"]
    assert record.levelno == logging.WARNING and "an impatient integration" in record.getMessage()
