"""The URLs `rerank-kit serve` prints for Dify and RAGFlow (local_server/paste.py): right per way of running them.
Working as pasted, each sent the request its provider sends to a real server: tests/e2e/server/test_startup.py.
"""

from __future__ import annotations

import re

import pytest

from local_server.paste import FIELDS, paste_guide, ways


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


@pytest.mark.parametrize("host", ["localhost", "::1"])
def test_loopback_names_are_never_offered_to_containers(host: str) -> None:
    assert ways(host, 8086, containerised=False)[0].base_url is None
