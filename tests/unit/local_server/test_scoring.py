"""The scoring path of one request (local_server/scoring.py) around fake engines (no model, no server): refused
before tokenising when the queue cannot take it or the model is unknown, tokenised off the event loop in the
model's own tokenizer pool with the request's options, batched on the model's lane, every document scored as
its best window, calibrated by the sigmoid unless raw scores are asked for. Milliseconds each."""

from __future__ import annotations

import asyncio

import pytest

from local_server import registry
from local_server.batcher import OverloadedError
from local_server.registry import ModelNotFoundError
from rerank_kit.scores import sigmoids
from tests.support.fake_engines import QUERY, WindowedEngine


def test_a_document_scores_as_its_best_window_calibrated_by_the_sigmoid(scorer_of) -> None:
    scorer = scorer_of({"m": WindowedEngine()})
    documents = ["0.5 2.0 -1.0", "-3.0", "1.0 1.0"]
    calibrated = asyncio.run(scorer.score(None, QUERY, documents))
    raw = asyncio.run(scorer.score("m", QUERY, documents, raw_scores=True))
    assert raw.scores.tolist() == pytest.approx([2.0, -3.0, 1.0])
    assert calibrated.scores.tolist() == pytest.approx(sigmoids([2.0, -3.0, 1.0]))
    assert calibrated.tokens == raw.tokens == (3 + 4 + 5) + 3 + (3 + 4)  # every window's real tokens
    assert calibrated.model == raw.model == "m"


def test_the_request_options_reach_the_tokenizer_off_the_event_loop(scorer_of) -> None:
    engine = WindowedEngine()
    scorer = scorer_of({"m": engine})
    asyncio.run(scorer.score("m", QUERY, ["1.0"], truncate=False, direction="left", max_tokens_per_doc=7,
                             max_chunks_per_doc=3, instruction="find the capital"))
    ((documents, options, thread),) = engine.encoded
    assert documents == ["1.0"]
    assert options == {"truncate": False, "direction": "left", "max_tokens_per_doc": 7, "max_chunks_per_doc": 3,
                       "instruction": "find the capital"}
    assert thread.startswith("rerank-tokenize-0")  # the model's own pool, not the event loop's thread


def test_a_request_the_queue_cannot_take_is_refused_before_it_is_tokenised(scorer_of) -> None:
    engine = WindowedEngine()
    scorer = scorer_of({"m": engine}, max_queue_pairs=2)
    with pytest.raises(OverloadedError):
        asyncio.run(scorer.score("m", QUERY, ["1.0", "2.0", "3.0"]))  # every document makes at least one pair
    assert engine.encoded == [] and scorer.batcher.queued_pairs == 0
    assert asyncio.run(scorer.score("m", QUERY, ["1.0", "2.0"], raw_scores=True)).scores.tolist() == [1.0, 2.0]


def test_a_model_not_loaded_is_not_loaded_for_a_request_the_queue_cannot_take(scorer_of, monkeypatch) -> None:
    engine = WindowedEngine()
    loads: list[str] = []
    monkeypatch.setattr(registry, "_load_engine", lambda settings: loads.append(settings.model) or engine)
    scorer = scorer_of({"m": engine}, max_queue_pairs=2)
    scorer.models.models[0].engine = None  # as a lazy model before its first request, or after an idle unload
    with pytest.raises(OverloadedError):
        asyncio.run(scorer.score("m", QUERY, ["1.0", "2.0", "3.0"]))
    assert loads == []
    assert asyncio.run(scorer.score("m", QUERY, ["1.0", "2.0"], raw_scores=True)).scores.tolist() == [1.0, 2.0]
    assert loads == ["unused"]


def test_the_named_model_scores_on_its_own_engine_and_an_unknown_one_on_none(scorer_of) -> None:
    first, second = WindowedEngine(), WindowedEngine(offset=10.0)
    scorer = scorer_of({"first": first, "second": second})
    scored = asyncio.run(scorer.score("second", QUERY, ["1.0 -1.0", "2.0"], raw_scores=True))
    assert (scored.model, scored.scores.tolist()) == ("second", [11.0, 12.0])
    assert (first.encoded, first.scored_pairs, second.scored_pairs) == ([], 0, 3)
    assert second.encoded[0][2].startswith("rerank-tokenize-1")  # each model has its own tokenizer pool
    with pytest.raises(ModelNotFoundError, match="served models: first, second"):
        asyncio.run(scorer.score("third", QUERY, ["1.0"]))
    assert (len(first.encoded), len(second.encoded)) == (0, 1)
