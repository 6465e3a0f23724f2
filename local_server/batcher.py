"""Cross-request dynamic batching: one inference thread, token-budget batches, length sorting, fair slices.

Every served model has a lane (its forward pass, its batch budget, its line of requests). Requests put
their encoded pairs on a bounded queue and await a future. The inference thread runs in rounds: each
round serves every lane with waiting requests, the one served longest ago first, each lane an equal share
of its round budget (so a flood on one model cannot starve another); within a lane it takes waiting
requests in turn, a request at most a quarter of the lane's share before it goes to the back of the line
(so one huge request cannot make small ones wait for all of it), sorts the lane's pairs by length, cuts
them into batches whose padded size fits the lane's `max_batch_tokens` (and `max_batch_size` pairs), runs
the lanes' batches in turn, and resolves each request as soon as its last pair is scored. A request whose
client went away is dropped before its next pairs run. A batch that fails fails only its own requests;
one that runs out of memory is retried in halves (as RAGFlow's own reranker does). The event loop never runs model code.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from local_server.engine import EncodedPair

log = logging.getLogger(__name__)

# How much work one round may hold: a few batches' worth, and enough tokens (~160 pairs of 200 tokens)
# that sorting them removes most padding. Bigger rounds only make every request in them wait for the
# whole round, and a request arriving meanwhile wait for all of it.
_ROUND_BATCHES = 4
_MIN_ROUND_TOKENS = 32768
# A request takes at most this share of a round (1/_SLICES), then waits behind the others for its next
# slice: a small request never waits for all of a large one, and equal requests still finish in arrival
# order (sharing every round among all of them would finish a burst all at once, all of it late).
_SLICES = 4


class OverloadedError(RuntimeError):
    """The queue is full; the caller should retry later (HTTP 503 + Retry-After)."""


class BatcherStoppedError(RuntimeError):
    """The inference thread is not running, or the server is shutting down."""


@dataclass
class BatchStats:
    """Counters read by /metrics."""

    batches: int = 0
    pairs: int = 0
    padded_tokens: int = 0
    real_tokens: int = 0
    busy_seconds: float = 0.0
    abandoned_pairs: int = 0
    failed_batches: int = 0
    oom_splits: int = 0


@dataclass(eq=False)
class Lane:
    """One model's line: its forward pass, its padded-token budget per batch and per round.

    A decoder's round is one batch (`round_tokens = max_batch_tokens`): its batches are slow, and another
    model's requests wait at most for the round in progress.
    """

    name: str
    run_batch: Callable[[Sequence[EncodedPair]], np.ndarray]
    max_batch_tokens: int
    round_tokens: int
    jobs: deque[_Job] = field(default_factory=deque)  # jobs with pairs not yet taken, in turn order
    last_served: float = 0.0  # time.monotonic() of its last round


@dataclass(eq=False)
class _Job:
    pairs: Sequence[EncodedPair]
    lane: Lane
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    logits: np.ndarray = field(init=False)
    remaining: int = field(init=False)
    taken: int = 0  # pairs handed to rounds so far (they are taken in order)
    untaken_tokens: int = field(init=False)  # tokens of the pairs not yet taken
    finished: bool = False  # resolved, failed or abandoned: its other pairs must not run
    abandoned: bool = False  # its client went away (the future was cancelled)

    def __post_init__(self) -> None:
        self.logits = np.empty(len(self.pairs), dtype=np.float32)
        self.remaining = len(self.pairs)
        self.untaken_tokens = sum(len(p) for p in self.pairs)
        # Set on the event loop when the future is cancelled (the client went away); read by the thread.
        self.future.add_done_callback(self._on_done)

    def _on_done(self, future: asyncio.Future) -> None:
        self.abandoned = future.cancelled()
        self.finished = True

    @property
    def untaken(self) -> int:
        return len(self.pairs) - self.taken

    def take(self, max_tokens: int) -> list[int]:
        """The next pairs up to `max_tokens` tokens (at least one): this job's slice of a round."""
        picked: list[int] = []
        tokens = 0
        while self.taken < len(self.pairs):
            width = len(self.pairs[self.taken])
            if picked and tokens + width > max_tokens:
                break
            picked.append(self.taken)
            tokens += width
            self.taken += 1
        self.untaken_tokens -= tokens
        return picked

    def resolve(self, outcome: np.ndarray | BaseException) -> None:
        self.finished = True

        def deliver() -> None:
            if self.future.done():  # the client went away
                return
            if isinstance(outcome, BaseException):
                self.future.set_exception(outcome)
            else:
                self.future.set_result(outcome)

        self.loop.call_soon_threadsafe(deliver)


def plan_batches(lengths: Sequence[int], max_tokens: int, max_size: int) -> list[list[int]]:
    """Indices sorted by length, cut into batches with len(batch) * longest <= max_tokens and <= max_size."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True)
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        width = lengths[current[0]] if current else lengths[index]  # longest first: current[0] is widest
        if current and (len(current) + 1 > max_size or (len(current) + 1) * width > max_tokens):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


class Batcher:
    """Owns the inference thread; `await logits(pairs, lane)` returns raw logits in the order of `pairs`."""

    def __init__(self, *, max_batch_size: int, max_wait_ms: float, max_queue_pairs: int) -> None:
        self.max_batch_size = max_batch_size
        self._max_wait = max_wait_ms / 1000
        self.max_queue_pairs = max_queue_pairs
        self._lanes: list[Lane] = []
        self._in_round: set[_Job] = set()  # jobs with pairs in the round now running
        self._queued_pairs = 0
        self._cond = threading.Condition()
        self._closed = False  # shutting down: no new work
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="rerank-inference", daemon=True)
        self.stats = BatchStats()

    @property
    def queued_pairs(self) -> int:
        return self._queued_pairs

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping and not self._closed

    def start(self) -> None:
        self._thread.start()

    def add_lane(self, name: str, run_batch: Callable[[Sequence[EncodedPair]], np.ndarray], *,
                 max_batch_tokens: int, decoder: bool = False) -> Lane:
        """A model's lane; `run_batch` may be replaced later (a model loaded again after an idle unload)."""
        round_tokens = max_batch_tokens if decoder else max(max_batch_tokens * _ROUND_BATCHES, _MIN_ROUND_TOKENS)
        lane = Lane(name, run_batch, max_batch_tokens, round_tokens)
        with self._cond:
            self._lanes.append(lane)
        return lane

    def close(self, reason: str) -> None:
        """Fail every queued and running request with `reason` (the routes answer 503) and take no more."""
        with self._cond:
            self._closed = True
            for job in self._in_round:
                job.resolve(BatcherStoppedError(reason))
            self._fail_waiting(reason)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=30)

    def check_room(self, pairs: int) -> None:
        """Refuse early (before tokenising) work that cannot fit the queue now; `logits` checks again."""
        if self._queued_pairs + pairs > self.max_queue_pairs:
            raise OverloadedError(f"{self._queued_pairs} pairs are already waiting")

    async def logits(self, pairs: Sequence[EncodedPair], lane: Lane) -> np.ndarray:
        if not pairs:
            return np.empty(0, dtype=np.float32)
        loop = asyncio.get_running_loop()
        job = _Job(pairs, lane, loop.create_future(), loop)
        with self._cond:  # checked under the lock: close() and the thread's exit also hold it
            if not self.alive:
                raise BatcherStoppedError("the server is shutting down" if self._closed
                                          else "the inference thread is not running")
            if self._queued_pairs + len(pairs) > self.max_queue_pairs:
                raise OverloadedError(f"{self._queued_pairs} pairs are already waiting")
            lane.jobs.append(job)
            self._queued_pairs += len(pairs)
            self._cond.notify_all()
        return await job.future

    # -- the inference thread ----------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while (taken := self._next_round()) is not None:
                self._run_round(taken)
                with self._cond:
                    self._in_round = set()
        except Exception:  # a bug here must not leave requests waiting forever
            log.exception("the inference thread failed")
            self.close("the inference thread failed; see the server log")

    def _next_round(self) -> list[tuple[_Job, int]] | None:
        """Wait for work; give a lone small request `max_wait_ms` to gain company; serve every lane with
        waiting jobs (the one served longest ago first) an equal share of its round budget."""
        with self._cond:
            while not any(lane.jobs for lane in self._lanes) and not self._stopping:
                self._cond.wait()
            if self._stopping:
                self._fail_waiting("the server is shutting down")
                return None
            deadline = time.monotonic() + self._max_wait
            while self._short_of_a_batch() and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            self._drop_abandoned()
            active = sorted((lane for lane in self._lanes if lane.jobs), key=lambda lane: lane.last_served)
            taken: list[tuple[_Job, int]] = []
            for lane in active:
                taken += self._fill(lane, max(1, lane.round_tokens // len(active)))
                lane.last_served = time.monotonic()
            self._in_round = {job for job, _ in taken}
            return taken

    def _fill(self, lane: Lane, budget: int) -> list[tuple[_Job, int]]:
        """The lane's part of a round, from the front of its line, each job at most a slice, rotating jobs
        that have pairs left to the back."""
        taken: list[tuple[_Job, int]] = []
        tokens = 0
        rotated: list[_Job] = []
        while lane.jobs and tokens < budget:
            job = lane.jobs.popleft()
            alone = not lane.jobs and not rotated  # nobody else waits: the rest of the share is its
            before = job.untaken_tokens
            picked = job.take(budget - tokens if alone else min(budget // _SLICES, budget - tokens))
            taken += [(job, i) for i in picked]
            tokens += before - job.untaken_tokens
            self._queued_pairs -= len(picked)
            if job.untaken:
                rotated.append(job)  # its next slice waits behind everyone else's
        lane.jobs.extend(rotated)
        return taken

    def _short_of_a_batch(self) -> bool:
        """No lane has a full batch waiting (then a lone small request may wait for company)."""
        return all(sum(job.untaken_tokens for job in lane.jobs) < lane.max_batch_tokens
                   for lane in self._lanes if lane.jobs)

    def _drop_abandoned(self) -> None:
        for lane in self._lanes:
            for job in [j for j in lane.jobs if j.finished]:
                lane.jobs.remove(job)
                self._queued_pairs -= job.untaken
                self.stats.abandoned_pairs += job.untaken if job.abandoned else 0

    def _fail_waiting(self, reason: str) -> None:
        for lane in self._lanes:
            while lane.jobs:
                lane.jobs.popleft().resolve(BatcherStoppedError(reason))
        self._queued_pairs = 0

    def _run_round(self, taken: list[tuple[_Job, int]]) -> None:
        """Each lane's pairs in length-sorted batches, the lanes' batches taken in turn."""
        pairs = [job.pairs[i] for job, i in taken]
        plans: dict[Lane, deque[list[int]]] = {}
        for lane in dict.fromkeys(job.lane for job, _ in taken):
            mine = [index for index, (job, _) in enumerate(taken) if job.lane is lane]
            batches = plan_batches([len(pairs[i]) for i in mine], lane.max_batch_tokens, self.max_batch_size)
            plans[lane] = deque([mine[i] for i in batch] for batch in batches)
        while plans:
            for lane in list(plans):
                batch = plans[lane].popleft()
                if not plans[lane]:
                    del plans[lane]
                live = [index for index in batch if not taken[index][0].finished]
                self.stats.abandoned_pairs += sum(1 for index in batch if taken[index][0].abandoned)
                if live:
                    self._run_isolated(lane, live, taken, pairs)

    def _run_isolated(self, lane: Lane, batch: list[int], taken: list[tuple[_Job, int]],
                      pairs: list[EncodedPair]) -> None:
        """Run one batch; out of memory, retry it in halves; any other failure fails only its requests."""
        started = time.perf_counter()
        try:
            logits = lane.run_batch([pairs[i] for i in batch])
        except Exception as exc:
            if _is_out_of_memory(exc) and len(batch) > 1:
                self.stats.oom_splits += 1
                log.warning("out of memory on a batch of %d pairs; retrying it in halves", len(batch))
                half = len(batch) // 2
                self._run_isolated(lane, batch[:half], taken, pairs)
                self._run_isolated(lane, batch[half:], taken, pairs)
                return
            log.exception("inference failed on a batch of %d pairs", len(batch))
            self.stats.failed_batches += 1
            for job in {taken[i][0] for i in batch}:
                if not job.finished:
                    job.resolve(exc)
            return
        self._count(batch, pairs, time.perf_counter() - started)
        for index, logit in zip(batch, logits, strict=True):
            job, position = taken[index]
            if job.finished:
                continue
            job.logits[position] = logit
            job.remaining -= 1
            if job.remaining == 0:
                job.resolve(job.logits)

    def _count(self, batch: list[int], pairs: list[EncodedPair], seconds: float) -> None:
        lengths = [len(pairs[i]) for i in batch]
        self.stats.batches += 1
        self.stats.pairs += len(batch)
        self.stats.real_tokens += sum(lengths)
        self.stats.padded_tokens += max(lengths) * len(batch)
        self.stats.busy_seconds += seconds


def _is_out_of_memory(exc: Exception) -> bool:
    """torch's OutOfMemoryError (CUDA, MPS), a CPU allocation failure, or ONNX Runtime's."""
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or (
        "out of memory" in text or "failed to allocate" in text)
