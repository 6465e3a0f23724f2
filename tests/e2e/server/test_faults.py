"""Faults inside the server: an unexpected exception is one log record and a typed 500, the keep-alive
connection stays usable, and the server goes on serving.

The server runs in this process (uvicorn on loopback, in a thread) around the real engine, so a fault
can be injected into it; requests still go over real HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server_process import free_port

EXPLODE = "explode"  # the query that makes the patched engine raise before scoring
POISON = "dog"  # a word whose token in a batch makes the patched model raise (one vocabulary token)
BULKY = "cat"  # a word whose token in a batch of more than two pairs makes the model run out of memory


@contextlib.contextmanager
def serve_in_process(model_dir: Path, **settings_values: Any) -> Iterator[str]:
    """The real app and engine on loopback, with faults injected into tokenising and the forward pass."""
    import uvicorn

    from local_server.app import create_app
    from local_server.backends import load_backend
    from local_server.engine import RerankEngine
    from local_server.registry import ServedModels
    from local_server.settings import Settings

    settings = Settings(model=str(model_dir), offline=True, **settings_values)
    engine = RerankEngine(load_backend(settings), settings)
    encode, logits = engine.encode, engine.logits
    poison, bulky = (engine.tokenizer.convert_tokens_to_ids(word) for word in (POISON, BULKY))

    def encode_or_explode(query: str, *args: Any, **kwargs: Any):
        if query == EXPLODE:
            raise KeyError("an unexpected bug")
        return encode(query, *args, **kwargs)

    def faulty_logits(pairs):
        tokens = {token for pair in pairs for token in pair.input_ids}
        if poison in tokens:
            raise RuntimeError("the model failed on this batch")
        if bulky in tokens and len(pairs) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return logits(pairs)

    engine.encode = encode_or_explode  # type: ignore[method-assign]
    engine.logits = faulty_logits  # type: ignore[method-assign]
    port = free_port()
    app = create_app(settings, ServedModels.of(settings, engine))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the in-process server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def faulty_server(tiny_model_dir: Path) -> Iterator[str]:
    """Batches of one pair, so a failing batch holds only the poisoned request's pair."""
    with serve_in_process(tiny_model_dir, max_batch_size=1, max_wait_ms=20) as url:
        yield url


def metric(base_url: str, name: str) -> float:
    lines = httpx.get(f"{base_url}/metrics").text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(name))


def test_unexpected_error_is_a_typed_500_logged_once_and_the_connection_survives(
        faulty_server: str, caplog: pytest.LogCaptureFixture) -> None:
    good = {"query": "weather in paris", "documents": ["it is sunny today", "the cat sat on the mat"]}
    caplog.set_level(logging.INFO)
    with httpx.Client(base_url=faulty_server, timeout=30) as client:
        first = client.post("/v1/rerank", json=good)
        failed = client.post("/v1/rerank", json={**good, "query": EXPLODE})
        after = client.post("/v1/rerank", json=good)  # same keep-alive connection

    assert failed.status_code == 500
    assert failed.json() == {"error": "internal error: KeyError", "error_type": "Backend"}
    assert after.status_code == 200 and after.json()["results"] == first.json()["results"]
    assert failed.headers.get("connection", "keep-alive") != "close"
    records = [r for r in caplog.records if r.exc_info]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].getMessage() == "unexpected error answering POST /v1/rerank"
    assert "an unexpected bug" in caplog.text  # the traceback is in the one record
    assert "Exception in ASGI application" not in caplog.text
    assert metric(faulty_server, 'rerank_requests_total{route="/v1/rerank",status="500"}') == 1


DOCS = ["it is sunny today in paris", "paris is the capital of france", "rain and cloud over the river",
        "a python server for rerank model retrieval"]


def test_a_failing_batch_fails_only_its_own_request(faulty_server: str) -> None:
    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=faulty_server, timeout=30) as client:
            bodies = [{"query": f"weather {word}", "documents": DOCS} for word in ["in paris", POISON] + ["today"] * 6]
            return await asyncio.gather(*(client.post("/v1/rerank", json=body) for body in bodies))

    alone = httpx.post(f"{faulty_server}/v1/rerank", json={"query": "weather today", "documents": DOCS}).json()
    failed_before = metric(faulty_server, "rerank_failed_batches")
    responses = asyncio.run(send_all())
    assert responses[1].status_code == 500 and responses[1].json()["error_type"] == "Backend"
    assert [r.status_code for i, r in enumerate(responses) if i != 1] == [200] * 7
    assert all(r.json()["results"] == alone["results"] for r in responses[2:])
    assert metric(faulty_server, "rerank_failed_batches") == failed_before + 1  # its other pairs never ran
    after = httpx.post(f"{faulty_server}/v1/rerank", json={"query": "weather today", "documents": DOCS})
    assert after.status_code == 200


def test_out_of_memory_retries_the_batch_in_halves(tiny_model_dir: Path, faulty_server: str) -> None:
    documents = [*DOCS, "the mat by the river", "what is a vector search", "which city is the capital",
                 "token batch of the model"]
    body = {"query": f"the {BULKY} sat", "documents": documents}
    expected = httpx.post(f"{faulty_server}/v1/rerank", json=body).json()["results"]  # batches of one pair
    with serve_in_process(tiny_model_dir, max_wait_ms=20) as url:  # 2048-token batches: all 8 pairs at once
        response = httpx.post(f"{url}/v1/rerank", json=body, timeout=30)
        splits = metric(url, "rerank_oom_splits")
    assert response.status_code == 200
    got = response.json()["results"]
    assert [r["index"] for r in got] == [r["index"] for r in expected]
    assert [r["relevance_score"] for r in got] == pytest.approx([r["relevance_score"] for r in expected], abs=1e-6)
    assert splits == 3  # 8 pairs -> 4 + 4 -> 2 + 2 + 2 + 2
