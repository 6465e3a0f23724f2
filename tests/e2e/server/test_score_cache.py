"""The shared score cache over real HTTP: two server processes and a real redis-server started here. They share
entries; Redis is made slow, then killed mid-run, and every request is still answered with the same scores;
it comes back on its port and sharing resumes by itself."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from local_server.score_cache.shared import RETRY_AFTER_S
from tests.support.redis_server import RedisServer, redis_server
from tests.support.server_process import running_server
from tests.support.tiny_model import WORDS

SCORE_TOLERANCE = 1e-5


def fresh_documents(seed: int, count: int = 6) -> list[str]:
    """Documents no earlier request sent: each one misses this process's memory and asks Redis."""
    return [f"{' '.join(WORDS[(seed * 13 + i * 7 + j) % len(WORDS)] for j in range(5 + i))} {seed}-{i}"
            for i in range(count)]


def scores(base_url: str, documents: list[str]) -> list[float]:
    response = httpx.post(f"{base_url}/v1/rerank", json={"query": "weather in paris", "documents": documents},
                          timeout=30)
    assert response.status_code == 200, response.text
    return [r["relevance_score"] for r in sorted(response.json()["results"], key=lambda r: r["index"])]


def metric(base_url: str, name: str) -> float:
    for line in httpx.get(f"{base_url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def shared_hits(base_url: str) -> float:
    return metric(base_url, 'rerank_cache_hits_total{tier="shared"}')


def wait_for_keys(redis_url: str, count: int) -> None:
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 10
    while client.dbsize() < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.dbsize() >= count


@pytest.fixture(scope="module")
def redis_for_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def replicas(tiny_model_dir: Path, redis_for_cache: RedisServer) -> Iterator[tuple[str, str]]:
    with running_server(tiny_model_dir, cache_url=redis_for_cache.url) as first, \
            running_server(tiny_model_dir, cache_url=redis_for_cache.url) as second:
        yield first, second


def test_two_replicas_share_an_entry(replicas: tuple[str, str], redis_for_cache: RedisServer) -> None:
    first, second = replicas
    documents = fresh_documents(1)
    computed = scores(first, documents)
    wait_for_keys(redis_for_cache.url, len(documents))
    before = shared_hits(second)
    assert scores(second, documents) == computed  # exactly: the model's float32 logit went through Redis
    assert shared_hits(second) - before == len(documents)


def test_a_slow_redis_costs_a_timeout_not_an_answer(replicas: tuple[str, str], redis_for_cache: RedisServer) -> None:
    first, second = replicas
    sleeper = threading.Thread(target=lambda: redis.Redis.from_url(redis_for_cache.url).execute_command(
        "DEBUG", "SLEEP", "2"))
    sleeper.start()
    time.sleep(0.1)
    started = time.monotonic()
    documents = fresh_documents(2)
    assert scores(first, documents) == pytest.approx(scores(second, documents), abs=SCORE_TOLERANCE)
    assert time.monotonic() - started < 1.5  # two requests, each waited at most Redis' timeout
    sleeper.join()


def test_redis_killed_mid_run_then_back_every_request_answered(replicas: tuple[str, str],
                                                                redis_for_cache: RedisServer) -> None:
    first, second = replicas
    errors_before = metric(second, "rerank_cache_shared_errors_total")
    answered: list[tuple[list[float], list[float]]] = []
    stop = threading.Event()

    def traffic() -> None:  # each fresh request to both replicas: the second asks Redis for the first's entries
        seed = 100
        while not stop.is_set():
            documents = fresh_documents(seed)
            answered.append((scores(first, documents), scores(second, documents)))
            seed += 1

    sender = threading.Thread(target=traffic)
    sender.start()
    time.sleep(1.0)
    redis_for_cache.kill()
    time.sleep(2.0)
    stop.set()
    sender.join(timeout=60)
    assert len(answered) >= 4
    for from_first, from_second in answered:
        assert from_second == pytest.approx(from_first, abs=SCORE_TOLERANCE)
    assert metric(second, "rerank_cache_shared_errors_total") > errors_before

    redis_for_cache.start()  # on its port again, empty
    assert shared_within(replicas, redis_for_cache, seconds=10), "sharing did not resume"


def shared_within(replicas: tuple[str, str], redis_server: RedisServer, *, seconds: float) -> bool:
    """Whether, within `seconds`, fresh documents scored by the first replica are answered to the second from
    Redis (each replica's first call after an outage may still meet a dead connection and rest a moment)."""
    first, second = replicas
    client = redis.Redis.from_url(redis_server.url)
    deadline = time.monotonic() + seconds
    seed = 1000
    while time.monotonic() < deadline:
        seed += 1
        documents = fresh_documents(seed)
        computed = scores(first, documents)
        time.sleep(0.2)  # the first replica's write happens in the background
        before = shared_hits(second)
        answer = scores(second, documents)
        assert answer == pytest.approx(computed, abs=SCORE_TOLERANCE)
        if shared_hits(second) - before == len(documents) and client.dbsize() >= len(documents):
            return answer == computed
        time.sleep(RETRY_AFTER_S)
    return False
