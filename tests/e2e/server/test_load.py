"""Load and overload over real HTTP, the bounded version of `python -m benchmarks.soak`.

64 closed-loop clients for 10 s with 20 passages per request: every answer is a 200 equal to the lone
answer (or a typed 503), no connection is dropped, latency percentiles exist and the server's memory stays
flat after warm-up. Past the queue bound: typed 503s with Retry-After, never a dropped connection.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import httpx

from benchmarks.soak import compare, is_typed_overload, make_probes, reference_answers, run_soak
from tests.support.server_process import running_server, running_server_process

CLIENTS = 64
PASSAGES = 20
SOAK_SECONDS = 10.0
OVERLOAD_SECONDS = 2.0
# Per request: generous, so a machine busy with other work slows the test down rather than failing it;
# a server that hangs still fails it (a timeout counts as a transport error).
TIMEOUT = 60.0
OVERLOAD_QUEUE_PAIRS = 60  # three 20-passage requests may wait; the rest of 64 clients are turned away
# RSS growth allowed between warm-up (20% of the run) and the end. The server idles near 520 MB (torch);
# under this load it settles 10-20 MB higher within a few seconds (glibc arenas of the event loop, tokenizer
# and inference threads, and in-flight batches), and runs here grew 4-9 MB after warm-up without any leak.
# 50 MB over ~8 s at 30-70 requests/s is ~100-200 KB per request: a leak of what a request makes, such as
# its batches' inputs or activations (one 2048-token batch's attention maps alone are ~8 MB), crosses it; a leak of
# a few KB per request (a kept response body) does not: the 60 s soak's RSS trace is the finer check.
RSS_GROWTH_BOUND_MB = 50.0


def test_64_clients_get_only_correct_answers_and_memory_stays_flat(tiny_model_dir: Path, tmp_path: Path) -> None:
    log_file = tmp_path / "server.log"  # a file, not a pipe: a chatty server can never block on its output
    with running_server_process(tiny_model_dir, log_file=log_file) as server:
        report = run_soak(server.base_url, clients=CLIENTS, seconds=SOAK_SECONDS, passages=PASSAGES,
                          pid=server.pid, timeout=TIMEOUT)
    summary = report.summary()
    print(summary)
    assert report.transport_errors == 0, summary
    assert report.other_non_200 == 0, summary
    assert report.wrong_answers == 0, summary
    assert report.ok + report.overloaded == report.requests, summary
    assert report.ok >= CLIENTS, summary  # every client had a real turn, not one lucky request
    assert report.elapsed >= SOAK_SECONDS, summary
    assert math.isfinite(report.p50_ms) and 0 < report.p50_ms <= report.p99_ms <= report.max_ms, summary
    assert report.healthy_after, summary
    assert len(report.rss_samples) >= SOAK_SECONDS - 1, summary  # sampled about every second
    assert report.rss_growth_mb is not None and report.rss_growth_mb < RSS_GROWTH_BOUND_MB, summary
    assert not report.failed, summary
    logs = log_file.read_text()
    assert "Traceback" not in logs and "ERROR" not in logs, logs[-2000:]


def test_overload_answers_typed_503_with_retry_after_and_never_drops_a_connection(tiny_model_dir: Path) -> None:
    probes = make_probes(PASSAGES)
    # A request's pairs must fit the queue (20 documents x 3 windows for one probe), so the per-request cap
    # comes down with it; a server without that setting ignores the variable.
    # The burst repeats its probes: they must reach the queue, so the score cache is off (it would answer them).
    with running_server(tiny_model_dir, max_queue_pairs=str(OVERLOAD_QUEUE_PAIRS),
                        max_pairs_per_request=str(OVERLOAD_QUEUE_PAIRS), cache_bytes="0") as url:
        answers = reference_answers(url, probes, timeout=TIMEOUT)

        async def burst() -> list[httpx.Response | BaseException]:
            limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
            async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT, limits=limits) as client:
                sends = (client.post(probes[i % len(probes)].route, json=probes[i % len(probes)].body)
                         for i in range(CLIENTS))
                gathered = asyncio.gather(*sends, return_exceptions=True)
                return await asyncio.wait_for(gathered, timeout=2 * TIMEOUT)

        # All 64 at once, 1280 pairs against a 60-pair queue: the raw answers, not the driver's tally.
        responses = asyncio.run(burst())
        dropped = [r for r in responses if isinstance(r, BaseException)]
        assert not dropped, dropped[:3]
        statuses = [r.status_code for r in responses]
        assert set(statuses) <= {200, 503} and 200 in statuses and 503 in statuses, statuses
        for i, response in enumerate(responses):
            if response.status_code == 503:
                assert response.headers["retry-after"].isdigit(), response.headers
                body = response.json()
                assert body["error_type"] == "Overloaded" and body["error"], body
                assert is_typed_overload(response)
            else:
                assert compare(answers[i % len(probes)], response.json()) is None

        # Then closed-loop clients that honour Retry-After keep the queue full for a few seconds.
        report = run_soak(url, clients=CLIENTS, seconds=OVERLOAD_SECONDS, passages=PASSAGES, timeout=TIMEOUT)
        summary = report.summary()
        print(summary)
        assert report.overloaded > 0 and report.ok > 0, summary
        assert report.transport_errors == 0, summary
        assert report.other_non_200 == 0, summary
        assert report.wrong_answers == 0, summary
        assert report.healthy_after and not report.failed, summary
        assert httpx.post(f"{url}{probes[0].route}", json=probes[0].body, timeout=TIMEOUT).status_code == 200
