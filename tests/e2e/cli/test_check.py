"""`rerank-kit check URL`: the report for a live rerank-kit server, a TEI-shaped server and a dead port.

The TEI-shaped server is a small stdlib HTTP server on a real loopback port (TEI's `/info`, `texts`
bodies, bare-list answers, PascalCase error types), so the report is produced end to end.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from http.server import BaseHTTPRequestHandler

import pytest

from rerank_kit.cli import main
from tests.support.server_process import QuietHandler, free_port, serving

TEI_MODEL = "BAAI/bge-reranker-base"


def _tei_handler(model_type: str, api_key: str | None) -> type[BaseHTTPRequestHandler]:
    class TEIShaped(QuietHandler):
        def _authorised(self) -> bool:
            if api_key and self.headers.get("Authorization") != f"Bearer {api_key}":
                self._reply(401, {"error": "Unauthorized", "error_type": "Unauthorized"})
                return False
            return True

        def do_GET(self) -> None:
            if not self._authorised():
                return
            if self.path == "/info":
                self._reply(200, {"model_id": TEI_MODEL, "model_dtype": "float16",
                                  "model_type": {model_type: {"id2label": {"0": "LABEL_0"}}},
                                  "max_client_batch_size": 32, "max_input_length": 512, "version": "1.9.3"})
            else:
                self._reply(404, {"error": "Not Found", "error_type": "NotFound"})

        def do_POST(self) -> None:
            if not self._authorised():
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != "/rerank":
                self._reply(404, {"error": "Not Found", "error_type": "NotFound"})
            elif "texts" not in body:
                self._reply(422, {"error": "Failed to deserialize the JSON body into the target type: "
                                           "missing field `texts`", "error_type": "Validation"})
            else:
                words = set(body["query"].lower().split())
                scores = [len(words & set(text.lower().split())) / (len(words) or 1) for text in body["texts"]]
                ranked = sorted(range(len(scores)), key=lambda i: -scores[i])
                self._reply(200, [{"index": i, "score": scores[i]} for i in ranked])

    return TEIShaped


def tei_server(model_type: str = "reranker", api_key: str | None = None) -> contextlib.AbstractContextManager[str]:
    return serving(_tei_handler(model_type, api_key))


def check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["check", *argv])
    return code, capsys.readouterr().out


def test_live_server_report_through_the_console_script(live_server: str) -> None:
    done = subprocess.run([sys.executable, "-m", "rerank_kit.cli", "check", live_server + "/v1/rerank"],
                          capture_output=True, text=True, timeout=60, env={"PATH": ""})
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines[0] == f"rerank-kit check {live_server}"
    assert "  reachable   yes" in lines and "  server      rerank-kit" in lines
    assert "  wire        POST /rerank with documents" in lines
    assert "  auth        not required" in lines and "  reranker    yes" in lines
    assert "  max length  512 tokens" in lines
    assert any(line.startswith("  probe       1 document scored ") for line in lines)
    assert lines[-1].startswith(f"OK: rerank-kit server at {live_server} serves ")


def test_tei_shaped_server_report(capsys: pytest.CaptureFixture[str]) -> None:
    with tei_server() as url:
        code, out = check(capsys, url, "--model", "bge-reranker-base")
    lines = out.splitlines()
    assert code == 0, out
    assert "  server      tei" in lines and "  wire        POST /rerank with texts" in lines
    assert "  reranker    yes" in lines
    assert f"  model       {TEI_MODEL}" in lines and "  max docs    32" in lines
    # the stub's score: "is the capital of" are 4 of the probe query's 6 words found in the probe document
    assert any(line.startswith("  probe       1 document scored 0.6667 in ") and line.endswith(", 0 tokens")
               for line in lines)
    assert lines[-1] == (f"OK: tei server at {url} serves {TEI_MODEL} "
                         "(max 32 documents per request, max 512 tokens)")


def test_tei_shaped_embedding_server_fails(capsys: pytest.CaptureFixture[str]) -> None:
    with tei_server(model_type="embedding") as url:
        code, out = check(capsys, url)
    assert code == 1
    assert "  reranker    no" in out.splitlines()
    assert out.splitlines()[-1].startswith(f"FAILED: the server at {url} serves a model that is not a reranker")


def test_tei_shaped_server_with_a_key(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RERANK_API_KEY", raising=False)
    with tei_server(api_key="tei-key") as url:
        missing_code, missing = check(capsys, url)
        wrong_code, wrong = check(capsys, url, "--api-key", "nope")
        ok_code, ok = check(capsys, url, "--api-key", "tei-key")
    assert (missing_code, wrong_code, ok_code) == (1, 1, 0)
    assert "  auth        required, no key sent" in missing.splitlines()
    assert "  auth        rejected" in wrong.splitlines() and "nope" not in wrong
    assert "  auth        accepted" in ok.splitlines() and "tei-key" not in ok


def test_model_not_served_fails(capsys: pytest.CaptureFixture[str]) -> None:
    with tei_server() as url:
        code, out = check(capsys, url, "--model", "bge-reranker-v2-m3")
    assert code == 1
    assert out.splitlines()[-1] == (f"FAILED: model bge-reranker-v2-m3 is not served; the server serves {TEI_MODEL} "
                                    f"(url: {url}). Hint: set the model name to {TEI_MODEL}")


def test_dead_port_report(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    code, out = check(capsys, f"localhost:{port}", "--retries", "0")
    lines = out.splitlines()
    assert code == 1
    assert "  reachable   no" in lines and "  auth        not reached" in lines
    assert "  server      unknown" in lines and "  wire        not established" in lines
    assert lines[-1] == (f"FAILED: cannot connect: [Errno 111] Connection refused (url: http://localhost:{port}/info)"
                         f". Hint: is `rerank-kit serve` running on port {port}? From Docker, use "
                         f"http://host.docker.internal:{port} instead of localhost")


def test_a_multi_model_server_report_lists_every_served_model(multi_model_server: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out = check(capsys, multi_model_server, "--model", "qwen3")
    assert code == 0
    assert "  served      minilm, gemma, qwen3, minicpm, gemma2-lite" in out and "  model       qwen3" in out
    code, out = check(capsys, multi_model_server, "--model", "bge-reranker-v2-m3")
    assert code == 1 and "FAILED: model bge-reranker-v2-m3 is not served" in out
    assert "set the model name to one of minilm, gemma, qwen3, minicpm, gemma2-lite" in out
