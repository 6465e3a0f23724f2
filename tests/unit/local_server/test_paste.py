"""The URLs `rerank-kit serve` prints for Dify and RAGFlow: right per way of running them, and working as pasted.

The live test reads the guide from a real `rerank-kit serve`'s output and sends, to every printed URL, the
request that platform's provider sends after appending its own route (docs/dify.md, docs/ragflow.md):
a URL that is printed but does not answer as that provider expects fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from local_server.paste import FIELDS, paste_guide, ways
from rerank_kit.client import RerankClient
from tests.support.server_process import running_server

QUERY, DOCS = "what is the capital of france", ["paris is the capital of france", "the cat sat on the mat"]


def test_each_way_gets_the_base_url_it_can_reach() -> None:
    every = {w.title: w.base_url for w in ways("0.0.0.0", 8086, containerised=True)}
    assert list(every.values()) == ["http://host.docker.internal:8086", "http://rerank-kit:8086",
                                    "http://127.0.0.1:8086"]
    assert [w.base_url for w in ways("0.0.0.0", 9000, containerised=False)] == [
        "http://host.docker.internal:9000", "http://127.0.0.1:9000"]  # no compose network outside a container
    loopback = ways("127.0.0.1", 8086, containerised=True)
    assert [w.base_url for w in loopback] == [None, None, "http://127.0.0.1:8086"]
    assert "set RERANK_HOST=0.0.0.0" in loopback[0].note
    assert [w.base_url for w in ways("192.168.1.5", 8086, containerised=False)] == ["http://192.168.1.5:8086"] * 2
    assert [w.base_url for w in ways("::", 8086, containerised=False)][-1] == "http://[::1]:8086"


def test_the_guide_names_every_field_with_its_suffix() -> None:
    guide = paste_guide("0.0.0.0", 8086, api_key_set=True, models=["bge-reranker-v2-m3"], containerised=False,
                        kubernetes=False)
    assert "Model name: bge-reranker-v2-m3" in guide and "API key: the server's RERANK_API_KEY" in guide
    assert 'extra_hosts: ["host.docker.internal:host-gateway"]' in guide
    for field in FIELDS:
        row = re.search(rf"{field.platform} {re.escape(field.provider)} +{field.label} +(\S+)", guide)
        assert row and row[1] == f"http://host.docker.internal:8086{field.suffix}"
    assert "leave it empty" in paste_guide("127.0.0.1", 8086, api_key_set=False, containerised=False,
                                           kubernetes=False)
    in_cluster = paste_guide("0.0.0.0", 8086, api_key_set=True, kubernetes=True)
    assert "http://<service>.<namespace>.svc.cluster.local:8086" in in_cluster
    assert "host.docker.internal" not in in_cluster  # no Docker host to reach from a pod


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


@pytest.mark.parametrize("host", ["localhost", "::1"])
def test_loopback_names_are_never_offered_to_containers(host: str) -> None:
    assert ways(host, 8086, containerised=False)[0].base_url is None
