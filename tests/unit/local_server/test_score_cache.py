"""The score cache in the scoring path (local_server/score_cache, local_server/scoring.py) around fake engines:
answers equal the uncached ones, each distinct document is computed once (within a request and across
concurrent ones: single flight), a request that goes away cancels only what nobody else awaits, the bound
holds, and an unloaded model's entries go. Milliseconds each."""

from __future__ import annotations

import asyncio
import threading

import pytest

from local_server.score_cache import ENTRY_BYTES
from tests.support.fake_engines import QUERY, WindowedEngine

CACHE = 1 << 20


def test_a_cached_answer_equals_the_uncached_one_raw_and_calibrated(scorer_of) -> None:
    documents = ["0.5 2.0 -1.0", "-3.0", "1.0 1.0", "0.25"]
    plain = scorer_of({"m": WindowedEngine()})
    engine = WindowedEngine()
    cached = scorer_of({"m": engine}, cache_bytes=CACHE)

    async def answers(scorer, **options):
        return [await scorer.score("m", QUERY, documents, **options) for _ in range(2)]

    for raw in (False, True):
        expected = asyncio.run(plain.score("m", QUERY, documents, raw_scores=raw))
        for scored in asyncio.run(answers(cached, raw_scores=raw)):
            assert scored.scores.tolist() == expected.scores.tolist()  # equal, not close
            assert (scored.tokens, scored.model) == (expected.tokens, expected.model)
    assert engine.documents_encoded == documents  # once, for four answers
    stats = cached.cache.memory.stats
    assert (cached.cache.stats.misses, stats.hits, len(cached.cache.memory)) == (4, 12, 4)


def test_the_options_that_change_a_score_are_computed_apart(scorer_of) -> None:
    engine = WindowedEngine()
    scorer = scorer_of({"m": engine}, cache_bytes=CACHE)
    variants = [{}, {"direction": "left"}, {"truncate": False}, {"instruction": "find it"},
                {"max_tokens_per_doc": 8}, {"max_chunks_per_doc": 2}]
    for options in variants * 2:
        asyncio.run(scorer.score("m", QUERY, ["1.0"], **options))
    assert len(engine.encoded) == len(variants)
    assert [options for _, options, _ in engine.encoded][1]["direction"] == "left"


def test_a_document_repeated_in_a_request_is_scored_once(scorer_of) -> None:
    engine = WindowedEngine()
    scorer = scorer_of({"m": engine}, cache_bytes=CACHE)
    scored = asyncio.run(scorer.score("m", QUERY, ["2.0", "1.0", "2.0", "2.0"], raw_scores=True))
    assert scored.scores.tolist() == [2.0, 1.0, 2.0, 2.0]
    assert engine.documents_encoded == ["2.0", "1.0"]


def test_a_document_in_flight_is_awaited_not_computed_again(scorer_of) -> None:
    gate = threading.Event()
    engine = WindowedEngine(gate=gate)
    scorer = scorer_of({"m": engine}, cache_bytes=CACHE)

    async def both():
        first = asyncio.create_task(scorer.score("m", QUERY, ["1.0", "2.0"], raw_scores=True))
        await asyncio.to_thread(engine.in_forward.wait, 10)  # the first request's pairs are in the model
        second = asyncio.create_task(scorer.score("m", QUERY, ["2.0", "3.0"], raw_scores=True))
        await asyncio.sleep(0.05)
        gate.set()
        return await first, await second

    first, second = asyncio.run(both())
    assert (first.scores.tolist(), second.scores.tolist()) == ([1.0, 2.0], [2.0, 3.0])
    assert engine.documents_encoded == ["1.0", "2.0", "3.0"]  # "2.0" once
    assert scorer.cache.stats.joins == 1


def test_a_request_that_leaves_does_not_cancel_work_another_awaits(scorer_of) -> None:
    gate = threading.Event()
    engine = WindowedEngine(gate=gate)
    scorer = scorer_of({"m": engine}, cache_bytes=CACHE)

    async def leave_early():
        owner = asyncio.create_task(scorer.score("m", QUERY, ["1.0", "2.0"], raw_scores=True))
        await asyncio.to_thread(engine.in_forward.wait, 10)
        joiner = asyncio.create_task(scorer.score("m", QUERY, ["2.0"], raw_scores=True))
        await asyncio.sleep(0.05)
        owner.cancel()  # its client went away
        await asyncio.sleep(0.05)
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await owner
        return await joiner

    assert asyncio.run(leave_early()).scores.tolist() == [2.0]
    assert engine.documents_encoded == ["1.0", "2.0"]


def test_work_nobody_awaits_any_more_is_cancelled(scorer_of) -> None:
    gate = threading.Event()
    engine = WindowedEngine(gate=gate)
    scorer = scorer_of({"m": engine, "other": WindowedEngine()}, cache_bytes=CACHE)

    async def leave():
        first = asyncio.create_task(scorer.score("m", QUERY, ["1.0"]))
        await asyncio.to_thread(engine.in_forward.wait, 10)
        second = asyncio.create_task(scorer.score("m", QUERY, ["2.0"]))  # queued behind the first's batch
        await asyncio.sleep(0.05)
        second.cancel()
        await asyncio.sleep(0.05)
        gate.set()
        await first
        with pytest.raises(asyncio.CancelledError):
            await second
        return await scorer.score("m", QUERY, ["2.0"], raw_scores=True)  # not a cached failure: computed anew

    assert asyncio.run(leave()).scores.tolist() == [2.0]
    assert scorer.batcher.stats.abandoned_pairs == 1  # the batcher dropped the pair nobody waited for
    assert scorer.cache._flights == {}


def test_the_byte_bound_evicts_the_least_recently_used(scorer_of) -> None:
    engine = WindowedEngine()
    scorer = scorer_of({"m": engine}, cache_bytes=2 * ENTRY_BYTES)
    for documents in (["1.0"], ["2.0"], ["1.0"], ["3.0"], ["1.0"], ["2.0"]):  # "2.0" was least recently used
        asyncio.run(scorer.score("m", QUERY, documents))
    memory = scorer.cache.memory
    assert (len(memory), memory.bytes, memory.stats.evictions) == (2, 2 * ENTRY_BYTES, 2)
    assert engine.documents_encoded == ["1.0", "2.0", "3.0", "2.0"]


def test_an_unloaded_model_loses_its_entries_and_keeps_the_others(scorer_of) -> None:
    scorer = scorer_of({"m": WindowedEngine(), "other": WindowedEngine(offset=1.0)}, cache_bytes=CACHE,
                       idle_unload_s=60)
    for model in ("m", "other"):
        asyncio.run(scorer.score(model, QUERY, ["1.0", "2.0"]))
    assert len(scorer.cache.memory) == 4
    scorer.models.models[1].last_used -= 120  # "other" idle past idle_unload_s
    assert scorer.models.unload_idle() == ["other"]
    assert len(scorer.cache.memory) == 2
