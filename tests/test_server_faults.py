"""Faults inside the server: an unexpected exception is one log record and a typed 500, the keep-alive
connection stays usable, and the server goes on serving.

The server runs in this process (uvicorn on loopback, in a thread) around the real engine, so a fault
can be injected into it; requests still go over real HTTP.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_process import free_port

EXPLODE = "explode"  # the query that makes the patched engine raise


@pytest.fixture(scope="module")
def faulty_server(tiny_model_dir: Path) -> Iterator[str]:
    import uvicorn

    from local_server.app import create_app
    from local_server.engine import RerankEngine
    from local_server.settings import Settings

    settings = Settings(model=str(tiny_model_dir), offline=True)
    engine = RerankEngine.load(settings)
    encode = engine.encode

    def encode_or_explode(query: str, *args, **kwargs):
        if query == EXPLODE:
            raise KeyError("an unexpected bug")
        return encode(query, *args, **kwargs)

    engine.encode = encode_or_explode  # type: ignore[method-assign]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, engine), host="127.0.0.1", port=port,
                                           log_level="info"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the in-process server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


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
