"""Load and soak driver: N closed-loop clients for a time budget against a running rerank-kit server, every
200 answer checked against the answer the same body got alone, plus latency and the server's memory.

    python -m benchmarks.soak --url http://127.0.0.1:8086 --clients 64 --seconds 60 --passages 20 --pid PID
    python -m benchmarks.soak --serve MODEL_DIR ...   # starts `rerank-kit serve` on MODEL_DIR for the run

A failure is anything but a 200 with the right answer or a typed 503 (`{"error", "error_type": "Overloaded"}`
with a Retry-After header): an untyped or other status, a dropped connection or timeout, a wrong answer.
Clients honour Retry-After (capped by the time left), as a well-behaved client would. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks import peers
from benchmarks.report import percentile

SCORE_TOLERANCE = 1e-5  # batch composition moves a logit by float rounding only
_MAX_EXAMPLES = 5
_TYPED_503 = frozenset({"Overloaded"})  # the server's error_type for a full queue

# Plain sentences; the tiny test model's tokenizer spells unknown words out in pieces, a real model reads
# them as words. Either way passages vary in length, and a few pass max_length so truncation matters.
_SENTENCES = (
    "Paris is the capital of France and its largest city.",
    "The Seine river flows through the city from east to west.",
    "It is sunny today, with a light wind and no rain expected.",
    "Clouds gather over the hills in the afternoon most days in spring.",
    "A cross-encoder reads the query and the passage together and returns one score.",
    "Hybrid search blends keyword matches with vector similarity before a reranker orders the results.",
    "The cat sat on the mat while the dog slept by the door.",
    "Tokenizers cut text into word pieces; unknown words fall back to single characters.",
    "Retrieval quality depends on the chunk size, the overlap and the embedding model.",
    "The server batches pairs from many requests into one forward pass to keep the CPU busy.",
    "Museums along the river hold paintings from the middle ages to the present day.",
    "A python client retries politely when the server says it is overloaded.",
    "Rain is likely tomorrow morning, clearing by the evening.",
    "The Eiffel Tower was built for the world fair of 1889.",
    "Batch size and sequence length decide how much memory one pass needs.",
    "Keyword search finds exact terms; vector search finds passages that mean the same thing.",
)
_QUERIES = (
    "what is the weather in paris today",
    "how does a cross encoder rerank passages",
    "which river flows through the capital of france",
    "why do servers batch requests",
)


@dataclass(frozen=True)
class Probe:
    """One distinct request body and the route it goes to."""

    route: str
    body: dict[str, Any]

    @property
    def label(self) -> str:
        settings = sorted(k for k in self.body if k not in ("query", "texts", "documents"))
        return f"{self.route} {'texts' if 'texts' in self.body else 'documents'} {','.join(settings) or '-'}"


@dataclass
class SoakReport:
    """Counts, latency and memory of one soak run; `failed` says whether anything non-typed went wrong."""

    url: str
    clients: int
    seconds: float
    passages: int
    bodies: int
    elapsed: float = 0.0
    requests: int = 0
    ok: int = 0
    overloaded: int = 0  # typed 503 with Retry-After: the server shedding load as designed
    other_non_200: int = 0
    transport_errors: int = 0  # dropped connections, resets, timeouts
    wrong_answers: int = 0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    healthy_after: bool = False
    statuses: dict[int, int] = field(default_factory=dict)
    transport_kinds: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    rss_samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds into the run, MB)
    rss_start_mb: float | None = None
    rss_warm_mb: float | None = None
    rss_end_mb: float | None = None
    rss_peak_mb: float | None = None

    @property
    def rss_growth_mb(self) -> float | None:
        """RSS at the end minus RSS after warm-up: a leak grows it with every request."""
        if self.rss_warm_mb is None or self.rss_end_mb is None:
            return None
        return self.rss_end_mb - self.rss_warm_mb

    @property
    def failed(self) -> bool:
        return bool(self.other_non_200 or self.transport_errors or self.wrong_answers or not self.ok
                    or not self.healthy_after)

    def summary(self) -> str:
        rate = self.requests / self.elapsed if self.elapsed else 0.0
        lines = [
            f"soak {self.url}: {self.clients} clients x {self.elapsed:.1f} s, {self.passages} passages per request, "
            f"{self.bodies} distinct bodies",
            f"  requests {self.requests} ({rate:.1f}/s, {rate * self.passages:.0f} pairs/s): ok {self.ok}, "
            f"typed 503 {self.overloaded}, other non-200 {self.other_non_200}, transport errors "
            f"{self.transport_errors}, wrong answers {self.wrong_answers}",
            f"  latency of 200s: p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, max {self.max_ms:.1f} ms",
        ]
        if self.rss_warm_mb is not None and self.rss_end_mb is not None:
            lines.append(f"  server RSS: start {self.rss_start_mb:.1f} MB, after warm-up {self.rss_warm_mb:.1f} MB, "
                         f"end {self.rss_end_mb:.1f} MB, growth {self.rss_growth_mb:+.1f} MB, "
                         f"peak {self.rss_peak_mb:.1f} MB ({len(self.rss_samples)} samples)")
            step = max(1, len(self.rss_samples) // 10)
            trace = ", ".join(f"{at:.0f}s {mb:.0f}" for at, mb in self.rss_samples[::step])
            lines.append(f"  RSS trace (MB): {trace}")
        lines.append(f"  /health after the run: {'200' if self.healthy_after else 'NOT healthy'}")
        if self.statuses:
            lines.append(f"  statuses: {dict(sorted(self.statuses.items()))}")
        if self.transport_kinds:
            lines.append(f"  transport errors: {self.transport_kinds}")
        lines += [f"  e.g. {example}" for example in self.examples]
        lines.append(f"  verdict: {'FAIL' if self.failed else 'PASS'}")
        return "\n".join(lines)


def require_loopback(url: str) -> None:
    """Refuse anything but 127.0.0.0/8, ::1 and localhost: this driver floods what it points at."""
    host = httpx.URL(url).host
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"the soak driver only targets loopback addresses, not {url!r}")


def make_passages(count: int, *, seed: int = 0) -> list[str]:
    """`count` deterministic passages, mostly 1 to 6 sentences; every tenth runs past 512 tokens (~40 sentences),
    so truncation direction and windows change the answer at the default max_length."""
    rng = random.Random(seed)
    passages = []
    for i in range(count):
        sentences = 1 + rng.randrange(6)
        if i % 10 == 9:
            sentences = 38 + rng.randrange(6)
        elif i % 5 == 4:
            sentences = 9 + rng.randrange(4)
        passages.append(" ".join(rng.choice(_SENTENCES) for _ in range(sentences)))
    return passages


def make_probes(passages: int) -> list[Probe]:
    """Eight distinct bodies of `passages` passages: every route, and the settings that change the answer."""
    pool = make_passages(passages * 2)

    def docs(offset: int) -> list[str]:
        return pool[offset:offset + passages]

    top = max(1, passages // 4)
    return [
        Probe("/rerank", {"query": _QUERIES[0], "texts": docs(0)}),
        Probe("/rerank", {"query": _QUERIES[1], "texts": docs(1), "truncation_direction": "left",
                          "raw_scores": True}),
        Probe("/rerank", {"query": _QUERIES[2], "texts": docs(2), "return_text": True}),
        Probe("/rerank", {"query": _QUERIES[3], "documents": docs(3), "top_n": top}),
        Probe("/v1/rerank", {"query": _QUERIES[0], "documents": docs(4), "return_documents": True,
                             "max_chunks_per_doc": 3}),
        Probe("/v2/rerank", {"query": _QUERIES[1], "documents": docs(5), "max_tokens_per_doc": 32,
                             "top_n": top * 2}),
        Probe("/api/v1/rerank", {"query": _QUERIES[2], "documents": [{"text": d} for d in docs(6)],
                                 "raw_scores": True}),
        Probe("/v1/rerank", {"query": _QUERIES[3], "documents": docs(7), "top_n": passages}),
    ]


def _results(body: Any) -> list[dict[str, Any]]:
    results = body if isinstance(body, list) else body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list) or not all(isinstance(r, dict) and "index" in r for r in results):
        raise ValueError(f"no results list in {str(body)[:120]}")
    return results


def _score(result: dict[str, Any]) -> float:
    return float(result["score"] if "score" in result else result["relevance_score"])


def compare(expected: Any, got: Any) -> str | None:
    """None when `got` is the lone answer `expected`, else why not.

    Same indices in the same order with scores within SCORE_TOLERANCE, other fields (texts) equal.
    Documents whose scores tie may swap places; a document absent from the lone answer may appear only
    where it ties with the last one kept by top_n.
    """
    try:
        want, have = _results(expected), _results(got)
    except (ValueError, KeyError, TypeError) as exc:
        return str(exc)
    if len(have) != len(want):
        return f"{len(have)} results, expected {len(want)}"
    indices = [r["index"] for r in have]
    if len(set(indices)) != len(indices):
        return f"repeated indices {indices}"
    for rank, (a, b) in enumerate(zip(want, have, strict=True)):
        if abs(_score(a) - _score(b)) > SCORE_TOLERANCE:
            return f"rank {rank}: index {b['index']} score {_score(b)}, expected index {a['index']} score {_score(a)}"
    by_index = {r["index"]: r for r in want}
    last_kept = _score(want[-1]) if want else 0.0
    for result in have:
        reference = by_index.get(result["index"])
        if reference is None:
            if abs(_score(result) - last_kept) > SCORE_TOLERANCE:
                return f"index {result['index']} is not in the lone answer"
            continue
        if abs(_score(result) - _score(reference)) > SCORE_TOLERANCE:
            return f"index {result['index']}: score {_score(result)}, alone {_score(reference)}"
        others = {k: v for k, v in result.items() if k not in ("score", "relevance_score")}
        if others != {k: v for k, v in reference.items() if k not in ("score", "relevance_score")}:
            return f"index {result['index']}: fields differ from the lone answer"
    return None


def is_typed_overload(response: httpx.Response) -> bool:
    """A 503 the client can act on: typed JSON body and a numeric Retry-After."""
    if response.status_code != 503 or not response.headers.get("retry-after", "").strip().isdigit():
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), str) and body.get("error_type") in _TYPED_503


def reference_answers(url: str, probes: list[Probe], timeout: float) -> list[Any]:
    """Each body sent alone, one at a time: the answers every concurrent answer must equal."""
    answers = []
    with httpx.Client(base_url=url, timeout=timeout) as client:
        for probe in probes:
            response = client.post(probe.route, json=probe.body)
            if response.status_code != 200:
                raise RuntimeError(f"{probe.label} alone answered {response.status_code}: {response.text[:200]}")
            answers.append(response.json())
    return answers


class _RssSampler:
    """RSS of a process and its children, sampled every `interval` seconds on a thread (bounded count)."""

    def __init__(self, pid: int, interval: float, max_samples: int) -> None:
        import psutil

        self._psutil = psutil
        try:
            self._root = psutil.Process(pid)
        except psutil.Error as exc:
            raise ValueError(f"cannot watch process {pid}: {exc}") from None
        self._interval, self._max_samples = interval, max_samples
        self._stop = threading.Event()
        self._started = time.perf_counter()
        self.samples: list[tuple[float, float]] = []
        self._thread = threading.Thread(target=self._run, name="soak-rss", daemon=True)

    def measure(self) -> float:
        total = 0
        with contextlib.suppress(self._psutil.Error):
            for proc in [self._root, *self._root.children(recursive=True)]:
                with contextlib.suppress(self._psutil.Error):
                    total += proc.memory_info().rss
        return total / 2**20

    def start(self) -> None:
        self._started = time.perf_counter()
        self._thread.start()

    def _run(self) -> None:
        while len(self.samples) < self._max_samples:
            self.samples.append((time.perf_counter() - self._started, self.measure()))
            if self._stop.wait(self._interval):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.samples.append((time.perf_counter() - self._started, self.measure()))


async def _drive(url: str, probes: list[Probe], answers: list[Any], report: SoakReport, latencies: list[float],
                 *, clients: int, seconds: float, timeout: float, max_requests_per_client: int) -> None:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    statuses: Counter[int] = Counter()
    kinds: Counter[str] = Counter()

    def note(example: str) -> None:
        if len(report.examples) < _MAX_EXAMPLES:
            report.examples.append(example[:300])

    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        deadline = time.perf_counter() + seconds

        async def worker(number: int) -> None:
            for n in range(max_requests_per_client):
                if time.perf_counter() >= deadline:
                    return
                which = (number + n) % len(probes)  # clients start on different bodies and cycle through all
                probe = probes[which]
                sent = time.perf_counter()
                report.requests += 1
                try:
                    response = await client.post(probe.route, json=probe.body)
                except httpx.TransportError as exc:
                    report.transport_errors += 1
                    kinds[type(exc).__name__] += 1
                    note(f"{probe.label}: {type(exc).__name__}: {exc}")
                    continue
                took = time.perf_counter() - sent
                statuses[response.status_code] += 1
                if response.status_code == 200:
                    try:
                        why = compare(answers[which], response.json())
                    except ValueError as exc:
                        why = f"not JSON: {exc}"
                    if why:
                        report.wrong_answers += 1
                        note(f"{probe.label}: wrong answer: {why}")
                    else:
                        report.ok += 1
                        latencies.append(took)
                elif is_typed_overload(response):
                    report.overloaded += 1
                    pause = min(float(response.headers["retry-after"]), deadline - time.perf_counter())
                    if pause > 0:
                        await asyncio.sleep(pause)
                else:
                    report.other_non_200 += 1
                    note(f"{probe.label}: {response.status_code} {dict(response.headers)} {response.text[:150]}")

        await asyncio.wait_for(asyncio.gather(*(worker(i) for i in range(clients))),
                               timeout=seconds + timeout + 30)
    report.statuses, report.transport_kinds = dict(statuses), dict(kinds)


def run_soak(url: str, *, clients: int = 64, seconds: float = 60.0, passages: int = 20, pid: int | None = None,
             timeout: float = 30.0, warmup_fraction: float = 0.2, rss_interval: float = 1.0,
             max_requests_per_client: int = 1_000_000) -> SoakReport:
    """Reference answers first, then `clients` closed-loop clients for `seconds`; returns the report.

    With `pid`, the server's RSS (the process and its children) is sampled every `rss_interval` seconds;
    `rss_warm_mb` is the first sample at `warmup_fraction` of the run, `rss_end_mb` the one after the load.
    """
    require_loopback(url)
    if clients < 1 or seconds <= 0 or passages < 1:
        raise ValueError("clients, seconds and passages must be positive")
    url = url.rstrip("/")
    probes = make_probes(passages)
    answers = reference_answers(url, probes, timeout)
    report = SoakReport(url=url, clients=clients, seconds=seconds, passages=passages, bodies=len(probes))
    sampler = None
    if pid is not None:
        sampler = _RssSampler(pid, rss_interval, max_samples=int(seconds / rss_interval) + 10)
        report.rss_start_mb = sampler.measure()
        sampler.start()
    latencies: list[float] = []
    started = time.perf_counter()
    try:
        asyncio.run(_drive(url, probes, answers, report, latencies, clients=clients, seconds=seconds,
                           timeout=timeout, max_requests_per_client=max_requests_per_client))
    finally:
        report.elapsed = time.perf_counter() - started
        if sampler:
            sampler.stop()
    if latencies:
        report.p50_ms, report.p99_ms = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
        report.max_ms = max(latencies) * 1000
    if sampler and sampler.samples:
        report.rss_samples = sampler.samples
        warm = next((mb for at, mb in sampler.samples if at >= seconds * warmup_fraction), sampler.samples[-1][1])
        report.rss_warm_mb, report.rss_end_mb = warm, sampler.samples[-1][1]
        report.rss_peak_mb = max(mb for _, mb in sampler.samples)
    with contextlib.suppress(httpx.HTTPError):
        report.healthy_after = httpx.get(f"{url}/health", timeout=timeout).status_code == 200
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="base URL of a running server (loopback only)")
    target.add_argument("--serve", type=Path, metavar="MODEL_DIR",
                        help="start `rerank-kit serve` on this model folder (loopback, default settings) and soak it")
    parser.add_argument("--clients", type=int, default=64, help="closed-loop clients (default 64)")
    parser.add_argument("--seconds", type=float, default=60.0, help="time budget (default 60)")
    parser.add_argument("--passages", type=int, default=20, help="passages per request (default 20)")
    parser.add_argument("--pid", type=int, help="server pid: sample its RSS (and its children's) every second")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout in seconds (default 30)")
    parser.add_argument("--max-rss-growth-mb", type=float,
                        help="also fail when RSS grows more than this after warm-up (needs --pid)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON after the summary")
    args = parser.parse_args(argv)
    try:
        with contextlib.ExitStack() as stack:
            if args.serve:
                work = args.serve.parent
                server = stack.enter_context(peers.serve(peers.rerank_kit_spec("rerank-kit", work), args.serve,
                                                         work / "soak-server.log"))
                args.url, args.pid = server.base_url, server.pid
            report = run_soak(args.url, clients=args.clients, seconds=args.seconds, passages=args.passages,
                              pid=args.pid, timeout=args.timeout)
    except (ValueError, RuntimeError, TimeoutError, httpx.HTTPError) as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    if args.json:
        print(json.dumps({**vars(report), "rss_growth_mb": report.rss_growth_mb, "failed": report.failed}))
    growth = report.rss_growth_mb
    too_much = args.max_rss_growth_mb is not None and (growth is None or growth > args.max_rss_growth_mb)
    if too_much:
        print(f"soak: RSS growth {growth} MB over the {args.max_rss_growth_mb} MB bound", file=sys.stderr)
    return 1 if report.failed or too_much else 0


if __name__ == "__main__":
    sys.exit(main())
