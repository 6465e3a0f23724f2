"""The batcher (local_server/batcher.py) on its own, around a fake forward pass (no model, no server): the planner's
length-sorted token-budget batches, every request's logits back in its own order, turns between lanes and
between the requests of a lane, the pairs of a request whose client went away dropped, out of memory retried
in halves, a failing batch failing only its own requests, the queue's bound, and shutdown. Milliseconds each."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any

import numpy as np
import pytest

from local_server.batcher import Batcher, BatcherStoppedError, OverloadedError, plan_batches
from local_server.engine import EncodedPair

HOLD = 0  # the marker of the pair a FakeForward holds the inference thread on


def test_batches_are_length_sorted_and_fit_the_token_budget() -> None:
    lengths = [10, 200, 30, 180, 50, 190, 20, 40]
    batches = plan_batches(lengths, max_tokens=400, max_size=32)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths, reverse=True)  # longest first, so each batch pads to its first item
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= 400
    # By hand: 2*200 fits 400, 3*200 does not; 2*180 fits, 3*180 does not; 4*40 fits.
    assert [[lengths[i] for i in b] for b in batches] == [[200, 190], [180, 50], [40, 30, 20, 10]]


def test_batch_size_cap_and_oversized_items() -> None:
    assert [len(b) for b in plan_batches([5] * 10, max_tokens=10_000, max_size=4)] == [4, 4, 2]
    assert plan_batches([900, 10], max_tokens=100, max_size=8) == [[0], [1]]  # an item over budget runs alone
    assert plan_batches([], max_tokens=100, max_size=8) == []


# -- the batcher around a fake forward pass ---------------------------------------------------------------


def pair(marker: int, length: int = 10) -> EncodedPair:
    """A pair of `length` tokens whose logit in a FakeForward is `marker`."""
    return EncodedPair(doc=0, input_ids=[marker] * length, token_type_ids=None)


def markers(first: int, count: int, length: int = 10) -> list[EncodedPair]:
    return [pair(marker, length) for marker in range(first, first + count)]


class FakeForward:
    """A lane's `run_batch`: each pair's logit is its marker. It logs every batch it is given (into `log`, shared
    by several lanes, as (name, markers)); in the batch holding the HOLD marker it holds the inference thread
    until `release` is set; `fail(markers)` may return an exception to raise instead of answering."""

    def __init__(self, name: str = "m", log: list[tuple[str, list[int]]] | None = None,
                 fail: Callable[[list[int]], Exception | None] | None = None) -> None:
        self.name = name
        self.log = [] if log is None else log
        self.fail = fail
        self.holding = threading.Event()
        self.release = threading.Event()

    @property
    def batches(self) -> list[list[int]]:
        return [batch for name, batch in self.log if name == self.name]

    def __call__(self, pairs: Sequence[EncodedPair]) -> np.ndarray:
        batch = [p.input_ids[0] for p in pairs]
        self.log.append((self.name, batch))
        if HOLD in batch:
            self.holding.set()
            if not self.release.wait(10):
                raise RuntimeError("the test never released the held batch")
        if self.fail and (error := self.fail(batch)) is not None:
            raise error
        return np.array(batch, dtype=np.float32)


@contextlib.contextmanager
def running(*forwards: FakeForward, **settings: Any) -> Iterator[Batcher]:
    """A started batcher (no wait for company unless asked); stopped afterwards, releasing any held batch."""
    batcher = Batcher(**{"max_batch_size": 32, "max_wait_ms": 0, "max_queue_pairs": 10_000, **settings})
    batcher.start()
    try:
        yield batcher
    finally:
        for forward in forwards:
            forward.release.set()
        batcher.stop()


async def queued(batcher: Batcher, pairs: int) -> None:
    """Wait (on the event loop) until `pairs` pairs wait in the batcher's queue."""
    for _ in range(1000):
        if batcher.queued_pairs == pairs:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"{batcher.queued_pairs} pairs queued, expected {pairs}")


def held(forward: FakeForward) -> Coroutine[Any, Any, bool]:
    """Wait until the inference thread is held in `forward`'s HOLD batch."""
    return asyncio.to_thread(forward.holding.wait, 5)


def test_logits_come_back_in_each_requests_order_from_token_budget_batches() -> None:
    forward = FakeForward()

    async def scenario() -> tuple[np.ndarray, np.ndarray]:
        with running(forward) as batcher:
            lane = batcher.add_lane("m", forward, max_batch_tokens=100)
            lengths = [10, 50, 40, 30, 20]
            logits = await batcher.logits([pair(i + 1, n) for i, n in enumerate(lengths)], lane)
            return logits, await batcher.logits([], lane)

    logits, nothing = asyncio.run(scenario())
    assert logits.tolist() == [1, 2, 3, 4, 5] and nothing.shape == (0,)
    # By hand, longest first with len(batch) * longest <= 100: [50, 40], then [30, 20, 10].
    assert forward.batches == [[2, 3], [4, 5, 1]]


def test_the_stats_count_real_and_padded_tokens_and_max_batch_size_caps_a_batch() -> None:
    forward = FakeForward()

    async def scenario() -> Batcher:
        with running(forward, max_batch_size=2) as batcher:
            lane = batcher.add_lane("m", forward, max_batch_tokens=1000)
            await batcher.logits([pair(1, 30), pair(2, 10), pair(3, 20), pair(4, 5), pair(5, 5)], lane)
            return batcher

    stats = asyncio.run(scenario()).stats
    assert forward.batches == [[1, 3], [2, 4], [5]]
    assert (stats.batches, stats.pairs, stats.real_tokens) == (3, 5, 70)
    assert stats.padded_tokens == 2 * 30 + 2 * 10 + 5
    assert stats.busy_seconds > 0 and (stats.failed_batches, stats.oom_splits, stats.abandoned_pairs) == (0, 0, 0)


def test_a_flood_on_one_lane_waits_its_turn_behind_another_lanes_request() -> None:
    """Decoder lanes: a round is one batch, so another model's request waits at most for the batch in progress."""
    log: list[tuple[str, list[int]]] = []
    flooded, other = FakeForward("flooded", log), FakeForward("other", log)

    async def scenario() -> list[str]:
        finished: list[str] = []

        async def request(name: str, pairs: list[EncodedPair], lane) -> None:
            assert (await batcher.logits(pairs, lane)).tolist() == [p.input_ids[0] for p in pairs]
            finished.append(name)

        with running(flooded, other) as batcher:
            flood_lane = batcher.add_lane("flooded", flooded, max_batch_tokens=40, decoder=True)
            other_lane = batcher.add_lane("other", other, max_batch_tokens=40, decoder=True)
            tasks = [asyncio.create_task(request("held", [pair(HOLD)], flood_lane))]
            await held(flooded)
            tasks += [asyncio.create_task(request(f"flood-{i}", markers(100 + 10 * i, 10), flood_lane))
                      for i in range(4)]
            tasks.append(asyncio.create_task(request("other", markers(200, 2), other_lane)))
            await queued(batcher, 42)
            flooded.release.set()
            await asyncio.gather(*tasks)
        return finished

    finished = asyncio.run(scenario())
    assert log[0] == ("flooded", [HOLD])
    assert log[1] == ("other", [200, 201])  # the next batch after the one in progress, before 40 flooded pairs
    assert finished[:2] == ["held", "other"]
    assert sorted(m for _, batch in log[2:] for m in batch) == list(range(100, 140))  # the flood, all of it


def test_a_small_request_is_not_kept_waiting_for_all_of_a_large_one() -> None:
    """Within a lane each request takes at most a slice of a round, then waits behind the others."""
    forward = FakeForward()

    async def scenario() -> list[str]:
        finished: list[str] = []

        async def request(name: str, pairs: list[EncodedPair]) -> None:
            assert (await batcher.logits(pairs, lane)).tolist() == [p.input_ids[0] for p in pairs]
            finished.append(name)

        with running(forward) as batcher:
            lane = batcher.add_lane("m", forward, max_batch_tokens=40, decoder=True)
            tasks = [asyncio.create_task(request("held", [pair(HOLD)]))]
            await held(forward)
            tasks.append(asyncio.create_task(request("large", markers(100, 20))))
            await queued(batcher, 20)
            tasks.append(asyncio.create_task(request("small", [pair(200)])))
            await queued(batcher, 21)
            forward.release.set()
            await asyncio.gather(*tasks)
        return finished

    assert asyncio.run(scenario()) == ["held", "small", "large"]
    assert forward.batches[1] == [100, 200]  # one slice of the large request, then the small one, in one batch


def test_a_request_whose_client_went_away_is_dropped_before_its_pairs_run() -> None:
    forward = FakeForward()

    async def scenario() -> Batcher:
        with running(forward) as batcher:
            lane = batcher.add_lane("m", forward, max_batch_tokens=1000)
            first = asyncio.create_task(batcher.logits([pair(HOLD)], lane))
            await held(forward)
            gone = asyncio.create_task(batcher.logits(markers(100, 5), lane))
            await queued(batcher, 5)
            gone.cancel()  # the route's task is cancelled when its client disconnects
            with pytest.raises(asyncio.CancelledError):
                await gone
            forward.release.set()
            assert (await first).tolist() == [HOLD]
            assert (await batcher.logits([pair(200)], lane)).tolist() == [200]
            assert batcher.queued_pairs == 0
            return batcher

    stats = asyncio.run(scenario()).stats
    assert forward.batches == [[HOLD], [200]]
    assert stats.abandoned_pairs == 5


def test_the_rest_of_a_round_is_dropped_when_its_request_goes_away_midway() -> None:
    """One pair per batch: the request's first pair is being scored when it goes; its other four never run."""
    forward = FakeForward()

    async def scenario() -> Batcher:
        with running(forward, max_batch_size=1) as batcher:
            lane = batcher.add_lane("m", forward, max_batch_tokens=1000)
            gone = asyncio.create_task(batcher.logits([pair(HOLD), *markers(101, 4)], lane))
            await held(forward)
            gone.cancel()
            with pytest.raises(asyncio.CancelledError):
                await gone
            forward.release.set()
            assert (await batcher.logits([pair(200)], lane)).tolist() == [200]
            return batcher

    stats = asyncio.run(scenario()).stats
    assert forward.batches == [[HOLD], [200]]
    assert stats.abandoned_pairs == 4 and stats.batches == 2


@pytest.mark.parametrize("out_of_memory", [
    RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    MemoryError(),
    RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory for requested buffer"),
])
def test_out_of_memory_retries_the_batch_in_halves(out_of_memory: Exception) -> None:
    forward = FakeForward(fail=lambda batch: out_of_memory if len(batch) > 2 else None)

    async def scenario() -> tuple[np.ndarray, Batcher]:
        with running(forward) as batcher:
            lane = batcher.add_lane("m", forward, max_batch_tokens=1000)
            return await batcher.logits(markers(1, 8), lane), batcher

    logits, batcher = asyncio.run(scenario())
    assert logits.tolist() == list(range(1, 9))
    assert [len(batch) for batch in forward.batches] == [8, 4, 2, 2, 4, 2, 2]  # 8 -> 4 + 4 -> 2 + 2 + 2 + 2
    assert (batcher.stats.oom_splits, batcher.stats.batches, batcher.stats.failed_batches) == (3, 4, 0)


def test_one_pair_out_of_memory_and_any_other_failure_fail_only_their_own_requests() -> None:
    """Batches of two: request B's first batch raises, so B fails and its last pair never runs; A and C are
    answered; a lone pair that runs out of memory cannot be halved, so its request fails."""
    forward = FakeForward(fail=lambda batch: (ValueError("the model failed on this batch") if 3 in batch else
                                              RuntimeError("out of memory") if 9 in batch else None))

    async def scenario() -> Batcher:
        with running(forward, max_batch_size=2) as batcher:
            lane = batcher.add_lane("m", forward, max_batch_tokens=1000)
            first = asyncio.create_task(batcher.logits([pair(HOLD)], lane))
            await held(forward)
            a = asyncio.create_task(batcher.logits(markers(1, 2), lane))
            await queued(batcher, 2)
            b = asyncio.create_task(batcher.logits(markers(3, 3), lane))
            await queued(batcher, 5)
            c = asyncio.create_task(batcher.logits(markers(6, 2), lane))
            await queued(batcher, 7)
            forward.release.set()
            results = await asyncio.gather(first, a, b, c, return_exceptions=True)
            assert [r.tolist() for r in (results[0], results[1], results[3])] == [[HOLD], [1, 2], [6, 7]]
            assert isinstance(results[2], ValueError) and str(results[2]) == "the model failed on this batch"
            with pytest.raises(RuntimeError, match="out of memory"):
                await batcher.logits([pair(9)], lane)
            return batcher

    stats = asyncio.run(scenario()).stats
    assert [batch for batch in forward.batches if 5 in batch] == []  # B's last pair never ran
    assert (stats.failed_batches, stats.oom_splits, stats.abandoned_pairs) == (2, 0, 0)


def test_the_queue_is_bounded_and_refuses_early() -> None:
    forward = FakeForward()

    async def scenario() -> None:
        with running(forward, max_queue_pairs=6) as batcher:
            lane = batcher.add_lane("m", forward, max_batch_tokens=1000)
            first = asyncio.create_task(batcher.logits([pair(HOLD)], lane))
            await held(forward)
            waiting = asyncio.create_task(batcher.logits(markers(1, 5), lane))
            await queued(batcher, 5)
            with pytest.raises(OverloadedError, match="5 pairs are already waiting"):
                batcher.check_room(2)
            with pytest.raises(OverloadedError, match="5 pairs are already waiting"):
                await batcher.logits(markers(10, 2), lane)
            batcher.check_room(1)
            last = asyncio.create_task(batcher.logits([pair(20)], lane))
            await queued(batcher, 6)
            forward.release.set()
            assert [r.tolist() for r in await asyncio.gather(first, waiting, last)] == [[HOLD], [1, 2, 3, 4, 5], [20]]
            assert batcher.queued_pairs == 0

    asyncio.run(scenario())
    assert 10 not in [m for batch in forward.batches for m in batch]


def test_close_fails_the_running_and_the_waiting_requests_and_takes_no_more() -> None:
    forward = FakeForward()

    async def scenario() -> None:
        with running(forward) as batcher:
            lane = batcher.add_lane("m", forward, max_batch_tokens=1000)
            running_request = asyncio.create_task(batcher.logits([pair(HOLD)], lane))
            await held(forward)
            waiting = asyncio.create_task(batcher.logits(markers(1, 3), lane))
            await queued(batcher, 3)
            batcher.close("the server is shutting down")
            assert not batcher.alive and batcher.queued_pairs == 0
            forward.release.set()
            for request in (running_request, waiting):
                with pytest.raises(BatcherStoppedError, match="the server is shutting down"):
                    await request
            with pytest.raises(BatcherStoppedError, match="the server is shutting down"):
                await batcher.logits([pair(5)], lane)

    asyncio.run(scenario())
    assert forward.batches == [[HOLD]]


def test_a_batcher_whose_thread_is_not_running_refuses_work() -> None:
    batcher = Batcher(max_batch_size=32, max_wait_ms=0, max_queue_pairs=10)
    lane = batcher.add_lane("m", FakeForward(), max_batch_tokens=1000)
    with pytest.raises(BatcherStoppedError, match="the inference thread is not running"):
        asyncio.run(batcher.logits([pair(1)], lane))
