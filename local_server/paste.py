"""What to paste into Dify and RAGFlow, printed by `rerank-kit serve` once the model is loaded.

The URL a platform needs depends on where it runs relative to this server (a container's `localhost` is the
container itself) and on the field: some fields take the base URL and append a path themselves, others want
`/v1`. Getting either wrong is what users of both platforms' trackers report most (a `/v1` or `/rerank` too
many or too few, `localhost` from inside Docker), so the server prints the exact value for every field and way.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rerank_kit import DOCKER_SERVER_URL

# The compose service name in conf/docker-compose.server.yml: how containers on its network reach it.
COMPOSE_SERVICE = "rerank-kit"
DOCKER_HOST = DOCKER_SERVER_URL.split("//", 1)[1].rsplit(":", 1)[0]  # host.docker.internal


@dataclass(frozen=True)
class Field:
    """One URL field of one platform's model form, and what it wants after the base URL."""

    platform: str
    provider: str
    label: str
    suffix: str  # appended to the base URL; the platform adds its route (/rerank, /api/rerank) itself

    def value(self, base_url: str) -> str:
        """What to paste into this field for a server at `base_url`."""
        return f"{base_url}{self.suffix}"


FIELDS: tuple[Field, ...] = (
    Field("Dify", "rerank-kit plugin", "Server URL", ""),
    Field("Dify", "Text Embedding Inference", "Server URL", ""),  # reads /info, posts {url}/rerank
    Field("Dify", "OpenAI-API-compatible", "API endpoint URL", "/v1"),  # posts {url}/rerank
    Field("Dify", "Ollama", "Base URL", ""),  # posts {url}/api/rerank
    Field("RAGFlow", "rerank-kit", "Base URL", ""),
    Field("RAGFlow", "HuggingFace", "Base URL", ""),  # posts {url}/rerank
    Field("RAGFlow", "OpenAI-API-Compatible", "Base URL", "/v1"),  # posts {url}/rerank
)


@dataclass(frozen=True)
class Way:
    """Where Dify or RAGFlow runs relative to this server: the base URL they reach it at, or why they cannot."""

    title: str
    base_url: str | None
    note: str = ""  # a condition when there is a base URL, the reason when there is none


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _bind(host: str) -> str:
    """'any' (every interface), 'loopback', or 'one' (one address)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return "loopback" if host == "localhost" else "one"
    if address.is_unspecified:
        return "any"
    return "loopback" if address.is_loopback else "one"


def in_container() -> bool:
    """Docker and Podman leave these files in every container."""
    return Path("/.dockerenv").exists() or Path("/run/.containerenv").exists()


def ways(host: str, port: int, *, containerised: bool) -> list[Way]:
    """The ways to reach a server bound to `host:port`, each with its base URL (None: unreachable that way)."""
    bind = _bind(host)
    only = f"listens on {host} only: set RERANK_HOST=0.0.0.0 (and RERANK_API_KEY) for containers to reach it"
    docker_title = "Dify or RAGFlow in Docker on this host"
    if bind == "any":  # host.docker.internal is the host's bridge address, which only a wildcard bind answers
        docker = Way(docker_title, f"http://{DOCKER_HOST}:{port}", 'on Linux, Dify\'s plugin_daemon needs '
                     'extra_hosts: ["host.docker.internal:host-gateway"]; RAGFlow\'s compose file has it')
    elif bind == "one":  # containers reach the host at that address too
        docker = Way(docker_title, f"http://{_url_host(host)}:{port}")
    else:
        docker = Way(docker_title, None, only)
    found = [docker]
    if containerised:
        found.append(Way(f"Dify or RAGFlow in the same compose network as this container (service "
                         f"`{COMPOSE_SERVICE}`)", f"http://{COMPOSE_SERVICE}:{port}" if bind == "any" else None,
                         "" if bind == "any" else only))
    local_host = {"any": "::1" if ":" in host else "127.0.0.1"}.get(bind, host.strip("[]"))
    found.append(Way("Dify or RAGFlow on this host, not in Docker", f"http://{_url_host(local_host)}:{port}"))
    return found


def api_key_advice(api_key_set: bool) -> str:
    """What to put in every form's API key field."""
    return "the server's RERANK_API_KEY" if api_key_set else "leave it empty (no RERANK_API_KEY is set)"


def kubernetes_advice(port: int) -> str:
    """In a pod the server cannot know the Service it is reached by; the chart's NOTES print it."""
    return (f"the Service's URL, http://<service>.<namespace>.svc.cluster.local:{port} (`helm status <release>` "
            "prints it for every field; add /v1 for the OpenAI-API-compatible fields)")


def in_kubernetes() -> bool:
    return "KUBERNETES_SERVICE_HOST" in os.environ


def console_url(host: str, port: int) -> str:
    """The console's address from this host (the way that is never unreachable: the last one)."""
    return f"{ways(host, port, containerised=False)[-1].base_url}/"


def paste_guide(host: str, port: int, *, api_key_set: bool, models: Sequence[str] = (),
                containerised: bool | None = None, kubernetes: bool | None = None) -> str:
    """The lines `rerank-kit serve` prints: per way, every platform field with the exact value to paste."""
    key = api_key_advice(api_key_set)
    lines = ["What to paste into Dify / RAGFlow:",
             f"  Model name: {', '.join(models) or 'any'}    API key: {key}"]
    if in_kubernetes() if kubernetes is None else kubernetes:
        return "\n".join([*lines, f"  In Kubernetes: {kubernetes_advice(port)}"])
    width = max(len(f"{f.platform} {f.provider}") for f in FIELDS)
    label_width = max(len(f.label) for f in FIELDS)
    for way in ways(host, port, containerised=in_container() if containerised is None else containerised):
        if way.base_url is None:
            lines += [f"  {way.title}", f"    not reachable: the server {way.note}"]
            continue
        lines.append(f"  {way.title}" + (f" ({way.note})" if way.note else ""))
        lines += [f"    {f'{f.platform} {f.provider}':<{width}}  {f.label:<{label_width}}  {f.value(way.base_url)}"
                  for f in FIELDS]
    return "\n".join(lines)
