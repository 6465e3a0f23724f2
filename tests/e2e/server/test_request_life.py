"""A request's whole life over real HTTP: what it may cost, fair turns, clients that leave, metrics of every
answer, shutdown with requests in flight, and credentials that never reach a log."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.support.server_process import running_server, running_server_process
from tests.support.tiny_model import WORDS

MB = 1024 * 1024


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM): what a request cost at its worst moment."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc")


def metric(base_url: str, name: str, headers: dict[str, str] | None = None) -> float:
    lines = httpx.get(f"{base_url}/metrics", headers=headers).text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(name))


def passages(count: int, words: int = 60) -> list[str]:
    return [" ".join(WORDS[(i + j * 5) % len(WORDS)] for j in range(words)) for i in range(count)]


@pytest.fixture(scope="module")
def limited(tiny_model_dir: Path):
    with running_server_process(tiny_model_dir, max_pairs_per_request="50", max_request_bytes=str(32 * MB),
                                max_docs="5000") as server:
        yield server


@pytest.mark.parametrize(("body", "status", "setting"), [
    ({"documents": ["a b c"] * 3, "max_chunks_per_doc": 33}, 422, "RERANK_MAX_CHUNKS_PER_DOC"),
    ({"documents": ["a b c"] * 3, "max_chunks_per_doc": 4, "max_tokens_per_doc": 1}, 422,
     "RERANK_MIN_WINDOW_TOKENS"),
    ({"documents": ["a b c"] * 20, "max_chunks_per_doc": 3}, 413, "RERANK_MAX_PAIRS_PER_REQUEST"),
    ({"documents": ["a b c"] * 51}, 413, "RERANK_MAX_PAIRS_PER_REQUEST"),
])
def test_the_work_one_request_may_create_is_bounded(limited, body: dict, status: int, setting: str) -> None:
    response = httpx.post(f"{limited.base_url}/v1/rerank", json={"query": "weather", **body}, timeout=30)
    assert response.status_code == status, response.text
    assert setting in response.json()["error"]


def test_a_huge_query_costs_what_its_kept_tokens_cost(limited) -> None:
    documents = ["it is sunny today in paris", "the cat sat on the mat"]
    kept = " ".join(["paris weather"] * 300)  # 600 tokens: past the 384-token query cap already
    huge = " ".join(["paris weather"] * 1_000_000)  # 14 MB
    expected = httpx.post(f"{limited.base_url}/v1/rerank", json={"query": kept, "documents": documents}).json()
    before = peak_rss_mb(limited.pid)
    started = time.perf_counter()
    response = httpx.post(f"{limited.base_url}/v1/rerank", json={"query": huge, "documents": documents}, timeout=60)
    seconds = time.perf_counter() - started
    assert response.status_code == 200, response.text
    assert response.json()["results"] == expected["results"]
    grown = peak_rss_mb(limited.pid) - before
    print(f"\n14 MB query: answered in {seconds:.2f} s, server peak RSS +{grown:.0f} MB")  # docs/RELIABILITY.md
    # The body itself is 14 MB, held as bytes and as a str; tokenising all of it cost 1.6-2.8 GB.
    assert grown < 150


def test_a_chunked_body_is_refused_once_it_passes_the_limit(tiny_model_dir: Path) -> None:
    with running_server_process(tiny_model_dir, max_request_bytes=str(MB)) as server:
        before = peak_rss_mb(server.pid)
        port = int(server.base_url.rsplit(":", 1)[1])
        sent, answer = 0, b""
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
            sock.settimeout(0.01)
            while sent < 200 * MB:  # bounded: at most 200 MB, and it stops at the first byte of an answer
                try:
                    answer = sock.recv(65536)
                    break
                except TimeoutError:
                    pass
                try:
                    sock.sendall(chunk)
                except OSError:  # the server closed the connection after answering
                    break
                sent += len(chunk)
            sock.settimeout(10)
            while b"\r\n\r\n" not in answer:
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"RERANK_MAX_REQUEST_BYTES" in answer or b"content-length" in answer.lower()
        grown = peak_rss_mb(server.pid) - before
        print(f"\nchunked upload, 1 MiB limit: 413 after {sent / MB:.1f} MB sent, server peak RSS +{grown:.0f} MB")
        assert sent < 20 * MB, f"the server read {sent / MB:.0f} MB before refusing"
        assert grown < 50


@pytest.fixture(scope="module")
def roomy(tiny_model_dir: Path):
    # The scheduling tests need work that outlasts the race: the torch path scores the tiny model slowly enough,
    # and every request must reach it (no score cache to answer a repeat).
    with running_server(tiny_model_dir, max_docs="5000", max_pairs_per_request="5000", backend="torch",
                        cache_bytes="0") as url:
        yield url


def test_a_small_request_is_not_starved_by_large_ones(roomy: str) -> None:
    async def race() -> list[str]:
        done: list[str] = []
        async with httpx.AsyncClient(base_url=roomy, timeout=120) as client:
            async def send(name: str, documents: list[str], delay: float) -> None:
                await asyncio.sleep(delay)
                response = await client.post("/v1/rerank", json={"query": "weather in paris",
                                                                  "documents": documents})
                assert response.status_code == 200, response.text
                done.append(name)

            async def send_small_once_both_large_are_queued() -> None:
                deadline = time.monotonic() + 60
                while True:
                    text = (await client.get("/metrics")).text
                    queued = next(float(line.split()[1]) for line in text.splitlines()
                                  if line.startswith("rerank_queue_pairs "))
                    if queued > 2500 or time.monotonic() > deadline:  # the second one is queued
                        break
                    await asyncio.sleep(0.02)
                await send("small", passages(3), 0.0)

            large = passages(2500, 120)  # ~320k tokens each: many rounds of work
            await asyncio.gather(send("large-1", large, 0.0), send("large-2", large, 0.0),
                                 send_small_once_both_large_are_queued())
        return done

    # In FIFO rounds the small request waited for both large ones; now it waits for one slice of each.
    assert asyncio.run(race())[0] == "small"


def test_pairs_of_a_client_that_went_away_are_dropped(tiny_model_dir: Path) -> None:
    # One pair per forward pass, so the 4000 pairs take seconds to score after a fast tokenisation.
    with running_server(tiny_model_dir, max_docs="5000", max_pairs_per_request="5000", max_batch_size="1",
                        backend="torch", cache_bytes="0") as url:  # a repeat must reach the model, not the cache
        body = {"query": "weather in paris", "documents": passages(4000, 4)}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/v1/rerank", json=body, timeout=httpx.Timeout(30, read=2.5))
        deadline = time.monotonic() + 30
        while metric(url, 'rerank_requests_total{route="/v1/rerank",status="499"}') < 1:
            assert time.monotonic() < deadline, "the abandoned request was never noticed"
            time.sleep(0.1)
        time.sleep(0.5)
        assert metric(url, "rerank_abandoned_pairs_total") > 0
        assert metric(url, "rerank_batch_pairs_total") < 4000
        assert metric(url, 'rerank_requests_total{route="/v1/rerank",status="200"}') == 0


def test_every_answer_is_counted_by_status(tiny_model_dir: Path) -> None:
    key = {"Authorization": "Bearer k-123"}
    with running_server(tiny_model_dir, api_key="k-123") as url:
        httpx.post(f"{url}/v1/rerank", json={"query": "q", "documents": ["d"]})  # 401
        httpx.post(f"{url}/v1/rerank", json={"query": "", "documents": ["d"]}, headers=key)  # 422
        httpx.post(f"{url}/v1/rerank", content=b"{", headers=key)  # 400
        httpx.post(f"{url}/v1/rerank", json={"query": "q", "documents": ["d"]}, headers=key)  # 200
        for status in (401, 422, 400, 200):
            assert metric(url, f'rerank_requests_total{{route="/v1/rerank",status="{status}"}}', key) == 1, status


def test_info_advertises_what_one_request_may_carry(limited) -> None:
    """Clients split their documents by /info's max_docs: it must never exceed the pairs a request may make."""
    info = httpx.get(f"{limited.base_url}/info").json()
    assert info["max_docs"] == info["max_client_batch_size"] == 50  # max_pairs_per_request, below max_docs


def test_a_client_gone_during_its_upload_is_counted_499_not_a_500(tiny_model_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with running_server_process(tiny_model_dir, log_file=log, log_level="info") as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100000\r\n\r\n{\"query\": \"half a body")
            time.sleep(0.3)
        deadline = time.monotonic() + 10
        while metric(server.base_url, 'rerank_requests_total{route="/v1/rerank",status="499"}') < 1:
            assert time.monotonic() < deadline, "the abandoned upload was never counted"
            time.sleep(0.1)
        assert metric(server.base_url, 'rerank_requests_total{route="/v1/rerank",status="500"}') == 0
    assert "unexpected error" not in log.read_text()


def test_405_names_the_allowed_methods(limited) -> None:
    response = httpx.get(f"{limited.base_url}/v1/rerank")
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json()["error_type"] == "MethodNotAllowed"


def _heavy_requests(url: str, count: int) -> list[httpx.Response | Exception]:
    async def send_all() -> list[httpx.Response | Exception]:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            return await asyncio.gather(*(client.post("/v1/rerank", json={
                "query": f"weather {i}", "documents": passages(400, 100)}) for i in range(count)),
                return_exceptions=True)
    return asyncio.run(send_all())


@pytest.mark.parametrize(("drain_seconds", "all_finish"), [("60", True), ("0.3", False)])
def test_sigterm_answers_every_request_in_flight_then_exits_0(tiny_model_dir: Path, drain_seconds: str,
                                                              all_finish: bool) -> None:
    import threading

    # The heavy requests repeat: the score cache is off so that they are all in flight at SIGTERM.
    with running_server_process(tiny_model_dir, drain_seconds=drain_seconds, max_docs="1000",
                                cache_bytes="0") as server:
        results: list[httpx.Response | Exception] = []
        sender = threading.Thread(target=lambda: results.extend(_heavy_requests(server.base_url, 8)))
        sender.start()
        deadline = time.monotonic() + 30
        while metric(server.base_url, "rerank_queue_pairs") < 400:  # wait until work is queued
            assert time.monotonic() < deadline
            time.sleep(0.05)
        server.process.send_signal(signal.SIGTERM)
        sender.join(timeout=120)
        assert server.process.wait(timeout=90) == 0
    assert len(results) == 8
    dropped = [r for r in results if isinstance(r, Exception)]
    assert not dropped, dropped
    statuses = sorted(r.status_code for r in results)  # type: ignore[union-attr]
    if all_finish:
        assert statuses == [200] * 8
    else:
        assert 503 in statuses and set(statuses) <= {200, 503}, statuses
        assert all(r.json()["error_type"] == "Unhealthy" for r in results if r.status_code == 503)  # type: ignore


def test_the_key_never_reaches_a_log_line(tiny_model_dir: Path, tmp_path: Path) -> None:
    secret = "sk-never-log-this-8123"
    log = tmp_path / "server.log"
    with running_server(tiny_model_dir, api_key=secret, log_level="debug", log_file=log) as url:
        body = {"query": "q", "documents": ["d"]}
        assert httpx.post(f"{url}/v1/rerank?api_key={secret}", json=body).status_code == 401
        assert httpx.post(f"{url}/v1/rerank?token={secret}&x=1", json=body,
                          headers={"Authorization": f"Bearer {secret}"}).status_code == 200
        httpx.post(f"{url}/v1/rerank", json=body, headers={"Authorization": f"Bearer {secret}x"})
    text = log.read_text()
    assert '"POST /v1/rerank?api_key=*** HTTP/1.1" 401' in text  # the access line, whole and redacted
    assert '"POST /v1/rerank?token=***&x=1 HTTP/1.1" 200' in text
    assert "Logging error" not in text and secret not in text


def test_with_a_key_only_the_public_routes_are_open(tiny_model_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    key = {"Authorization": "Bearer k-1"}
    with running_server(tiny_model_dir, api_key="k-1", public_routes="/health,/metrics", log_file=log) as url:
        for path in ("/docs", "/openapi.json", "/info"):
            assert httpx.get(f"{url}{path}").status_code == 401, path
            assert httpx.get(f"{url}{path}", headers=key).status_code == 200, path
        assert httpx.get(f"{url}/metrics").status_code == 200
        assert httpx.get(f"{url}/health").status_code == 200
    with running_server(tiny_model_dir, host="0.0.0.0", log_level="info", log_file=log) as url:
        assert httpx.get(f"{url}/health").status_code == 200
    assert "listening on 0.0.0.0 without an API key" in log.read_text()
