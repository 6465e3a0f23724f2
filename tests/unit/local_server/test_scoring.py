"""The scoring path of one request (local_server/scoring.py) around fake engines (no model, no server): refused
before tokenising when the queue cannot take it or the model is unknown, tokenised off the event loop in the
model's own tokenizer pool with the request's options, batched on the model's lane, every document scored as
its best window, calibrated by the sigmoid unless raw scores are asked for. Milliseconds each."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from local_server.batcher import OverloadedError
from local_server.engine import EncodedPair
from local_server.registry import ModelNotFoundError, ServedModel, ServedModels
from local_server.scoring import Scorer
from local_server.settings import Settings
from rerank_kit.scores import sigmoids

QUERY = "which city is the capital of france"


class WindowedEngine:
    """A fake engine: the document "2.0 -1.0" has two windows, whose logits are 2.0 and -1.0 plus `offset`;
    window w of a document is 3 + w tokens long. Records each encode call and the thread it ran on."""

    batch_tokens = 1000
    family = SimpleNamespace(decoder=False)
    kind = "cross-encoder"

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset
        self.encoded: list[tuple[list[str], dict[str, Any], str]] = []
        self.scored_pairs = 0

    def encode(self, query: str, documents: Sequence[str], **options: Any) -> list[EncodedPair]:
        assert query == QUERY
        self.encoded.append((list(documents), options, threading.current_thread().name))
        return [EncodedPair(doc=doc, input_ids=[round(float(logit) * 1000)] + [0] * (2 + window), token_type_ids=None)
                for doc, text in enumerate(documents) for window, logit in enumerate(text.split())]

    def logits(self, pairs: Sequence[EncodedPair]) -> np.ndarray:
        self.scored_pairs += len(pairs)
        return np.array([p.input_ids[0] / 1000 + self.offset for p in pairs], dtype=np.float32)


def served(engines: dict[str, WindowedEngine], **settings: Any) -> ServedModels:
    base = Settings(model="unused", offline=True, max_wait_ms=0, **settings)
    return ServedModels(base, [ServedModel(name, base, engine.kind, engine=engine)  # type: ignore[arg-type]
                               for name, engine in engines.items()], strict=True)


@pytest.fixture
def scorer_of() -> Iterator:
    """scorer_of(engines): a Scorer over those fake engines with its batcher running; stopped afterwards."""
    made: list[Scorer] = []

    def make(engines: dict[str, WindowedEngine], **settings: Any) -> Scorer:
        models = served(engines, **settings)
        models.batcher.start()
        made.append(Scorer(models, tokenizer_threads=1))
        return made[-1]

    yield make
    for scorer in made:
        scorer.close()
        scorer.batcher.stop()


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
