"""Cross-request dynamic batching: one inference thread, token-budget batches, length sorting.

Requests put their encoded pairs on a bounded queue and await a future. The inference thread takes
every waiting request (FIFO, up to a round's token budget), sorts all their pairs by length, cuts them
into batches whose padded size fits `max_batch_tokens` (and `max_batch_size` pairs), runs them, and
resolves each request as soon as its last pair is scored. The event loop never runs model code.
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

log = logging.getLogger("rerank_kit.batcher")

# How much work one round may hold: a few batches' worth, and enough tokens (~160 pairs of 200 tokens)
# that sorting them removes most padding. Bigger rounds only make every request in them wait for the
# whole round, and a request arriving meanwhile wait for all of it.
_ROUND_BATCHES = 4
_MIN_ROUND_TOKENS = 32768


class OverloadedError(RuntimeError):
    """The queue is full; the caller should retry later (HTTP 503 + Retry-After)."""


class BatcherStoppedError(RuntimeError):
    """The inference thread is not running."""


@dataclass
class BatchStats:
    """Counters read by /metrics."""

    batches: int = 0
    pairs: int = 0
    padded_tokens: int = 0
    real_tokens: int = 0
    busy_seconds: float = 0.0


@dataclass(eq=False)
class _Job:
    pairs: Sequence[EncodedPair]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    logits: np.ndarray = field(init=False)
    remaining: int = field(init=False)
    tokens: int = field(init=False)

    def __post_init__(self) -> None:
        self.logits = np.empty(len(self.pairs), dtype=np.float32)
        self.remaining = len(self.pairs)
        self.tokens = sum(len(p) for p in self.pairs)

    def resolve(self, outcome: np.ndarray | BaseException) -> None:
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
    """Owns the inference thread; `await score(pairs)` returns raw logits in the order of `pairs`."""

    def __init__(self, run_batch: Callable[[Sequence[EncodedPair]], np.ndarray], *, max_batch_tokens: int,
                 max_batch_size: int, max_wait_ms: float, max_queue_pairs: int) -> None:
        self._run_batch = run_batch
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size
        self._max_wait = max_wait_ms / 1000
        self.max_queue_pairs = max_queue_pairs
        self._jobs: deque[_Job] = deque()
        self._queued_pairs = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="rerank-inference", daemon=True)
        self.stats = BatchStats()

    @property
    def queued_pairs(self) -> int:
        return self._queued_pairs

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=30)

    async def score(self, pairs: Sequence[EncodedPair]) -> np.ndarray:
        if not pairs:
            return np.empty(0, dtype=np.float32)
        if not self.alive:
            raise BatcherStoppedError("the inference thread is not running")
        loop = asyncio.get_running_loop()
        job = _Job(pairs, loop.create_future(), loop)
        with self._cond:
            if self._queued_pairs and self._queued_pairs + len(pairs) > self.max_queue_pairs:
                raise OverloadedError(f"{self._queued_pairs} pairs are already waiting")
            self._jobs.append(job)
            self._queued_pairs += len(pairs)
            self._cond.notify()
        return await job.future

    # -- the inference thread ----------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            round_jobs = self._next_round()
            if round_jobs is None:
                return
            try:
                self._run_round(round_jobs)
            except Exception as exc:  # a backend failure fails this round's requests, not the server
                log.exception("inference failed")
                for job in round_jobs:
                    if job.remaining:
                        job.resolve(exc)

    def _next_round(self) -> list[_Job] | None:
        """Wait for work; give a lone small request `max_wait_ms` to gain company; take FIFO jobs."""
        budget = max(self.max_batch_tokens * _ROUND_BATCHES, _MIN_ROUND_TOKENS)
        with self._cond:
            while not self._jobs and not self._stopping:
                self._cond.wait()
            if self._stopping:
                self._fail_waiting()
                return None
            deadline = time.monotonic() + self._max_wait
            while sum(j.tokens for j in self._jobs) < self.max_batch_tokens and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            jobs: list[_Job] = []
            tokens = 0
            while self._jobs and (not jobs or tokens + self._jobs[0].tokens <= budget):
                job = self._jobs.popleft()
                self._queued_pairs -= len(job.pairs)
                if job.future.done():  # cancelled while queued
                    continue
                jobs.append(job)
                tokens += job.tokens
            return jobs

    def _fail_waiting(self) -> None:
        while self._jobs:
            self._jobs.popleft().resolve(BatcherStoppedError("the server is shutting down"))
        self._queued_pairs = 0

    def _run_round(self, jobs: list[_Job]) -> None:
        owners = [(job, i) for job in jobs for i in range(len(job.pairs))]
        pairs = [job.pairs[i] for job, i in owners]
        for batch in plan_batches([len(p) for p in pairs], self.max_batch_tokens, self.max_batch_size):
            started = time.perf_counter()
            logits = self._run_batch([pairs[i] for i in batch])
            self._count(batch, pairs, time.perf_counter() - started)
            for index, logit in zip(batch, logits, strict=True):
                job, position = owners[index]
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
