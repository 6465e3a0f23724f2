"""`rerank-kit serve` starting up: what it prints and logs once loaded (the URLs to paste, each working as pasted; what
to expect of a request), and a start that cannot work exits 2 with one clear line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from local_server.paste import FIELDS
from rerank_kit.client import RerankClient
from tests.support.server_process import running_server, write_models_config


def test_serve_says_what_to_expect_after_loading(tiny_model_dir: Path, tmp_path: Path) -> None:
    log_file = tmp_path / "serve.log"
    with running_server(tiny_model_dir, log_file=log_file, log_level="info"):
        pass
    lines = [line for line in log_file.read_text().splitlines() if "local_server.expectations" in line]
    assert len(lines) == 1 and f"{tiny_model_dir.name}: a request of 20 passages" in lines[0], lines
    assert "within every integration's default timeout" in lines[0]


QUERY, DOCS = "what is the capital of france", ["paris is the capital of france", "the cat sat on the mat"]


def _answers_as_the_provider_expects(provider: str, url: str) -> None:
    """The request `provider` sends to the URL pasted into its field, and the answer it reads."""
    if provider in ("rerank-kit plugin", "rerank-kit"):
        with RerankClient(url) as client:
            report = client.check()
        assert report.ok, report.message
        return
    if provider in ("Text Embedding Inference", "HuggingFace"):  # TEI: /info, then texts bodies to {url}/rerank
        info = httpx.get(f"{url}/info", timeout=30).json()
        assert "reranker" in info["model_type"]
        answer = httpx.post(f"{url}/rerank", json={"query": QUERY, "texts": DOCS, "raw_scores": False,
                                                   "truncate": True, "return_text": True}, timeout=30)
        assert answer.status_code == 200 and {item["index"] for item in answer.json()} == {0, 1}
        return
    route = "/api/rerank" if provider == "Ollama" else "/rerank"  # Ollama's plugin appends /api/rerank
    answer = httpx.post(f"{url}{route}", json={"model": "m", "query": QUERY, "documents": DOCS, "top_n": 2},
                        timeout=30)
    assert answer.status_code == 200, answer.text
    assert {item["index"] for item in answer.json()["results"]} == {0, 1}


def test_the_printed_urls_work_as_pasted(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)  # a CI runner in a pod still runs "on a host"
    log = tmp_path / "serve.log"
    with running_server(tiny_model_dir, log_file=log) as base_url:
        output = log.read_text()
        assert "What to paste into Dify / RAGFlow:" in output
        section = output.split("Dify or RAGFlow on this host, not in Docker", 1)[1]
        pasted = {}
        for field in FIELDS:
            row = re.search(rf"{field.platform} {re.escape(field.provider)} +{field.label} +(\S+)", section)
            assert row, f"{field} missing from:\n{output}"
            pasted[(field.platform, field.provider)] = row[1]
        assert set(pasted.values()) == {base_url, f"{base_url}/v1"}
        for (_, provider), url in pasted.items():
            _answers_as_the_provider_expects(provider, url)
    # The tests' server listens on 127.0.0.1: containers cannot reach it, and the guide says so.
    docker = output.split("Dify or RAGFlow in Docker on this host", 1)[1].split("Dify or RAGFlow on this host", 1)[0]
    assert "not reachable: the server listens on 127.0.0.1 only" in docker


def test_serve_with_a_bad_config_file_exits_2_with_one_line(tmp_path: Path) -> None:
    config = write_models_config(tmp_path / "models.yaml", [{"name": "a", "path": "p", "colour": "red"}])
    done = subprocess.run([sys.executable, "-m", "rerank_kit.cli", "serve", "--config", str(config)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == f"rerank-kit: {config}: models.0.colour: Extra inputs are not permitted"


@pytest.mark.parametrize("model", ["/nonexistent/bge-reranker", "BAAI/bge-reranker-v2-m3"])
def test_missing_model_exits_nonzero_with_one_clear_line(model: str, tmp_path: Path) -> None:
    env = {**os.environ, "RERANK_MODEL": model, "RERANK_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "rerank_kit.cli", "serve"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("rerank-kit:")]
    assert len(lines) == 1, proc.stderr
    assert model in lines[0] and "RERANK_MODEL" in lines[0] and "local folder" in lines[0]
    assert "Traceback" not in proc.stderr
