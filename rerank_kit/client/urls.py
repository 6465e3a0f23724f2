"""What users type as a server URL, forgiven; and what to tell them when that URL cannot be reached.

Apart from the wire and retry code because it changes with users' mistakes, not with servers.
"""

from __future__ import annotations

import re

import httpx

from rerank_kit import DEFAULT_PORT
from rerank_kit.errors import ConfigurationError

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "0.0.0.0", "::1"}
_ROUTE_SUFFIXES = ("/api/v1/rerank", "/v1/rerank", "/v2/rerank", "/rerank", "/v1", "/v2")
_SCHEMES = re.compile(r"^(?:(https?)://)+", re.IGNORECASE)
_EXAMPLE = f"use e.g. http://localhost:{DEFAULT_PORT}"


def normalize_base_url(url: str) -> str:
    """Forgive the usual URL mistakes: no scheme, doubled `http://`, route suffixes, trailing slashes.

    `host:8086`, `http://host:8086/`, `.../v1`, `.../rerank`, `.../v1/rerank` all become `http://host:8086`.
    """
    text = url.strip()
    match = _SCHEMES.match(text)
    scheme = match.group(1).lower() if match else "http"
    rest = text[match.end():] if match else text
    rest = rest.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    stripped = True
    while stripped:
        stripped = False
        for suffix in _ROUTE_SUFFIXES:
            if rest.lower().endswith(suffix):
                rest = rest[: -len(suffix)].rstrip("/")
                stripped = True
    if not rest or rest.startswith("/"):
        raise ConfigurationError(f"the server URL {url!r} has no host", hint=_EXAMPLE)
    try:
        httpx.URL(f"{scheme}://{rest}")
    except httpx.InvalidURL as exc:
        raise ConfigurationError(f"the server URL {url!r} is not valid: {exc}", hint=_EXAMPLE) from None
    return f"{scheme}://{rest}"


def prefers_v1(url: str) -> bool:
    """Whether the URL as given named the `/v1` routes: then `/v1/rerank` is tried first."""
    path = url.strip().split("?", 1)[0].rstrip("/").lower()
    return path.endswith(("/v1", "/v1/rerank"))


def url_forms_hint(base_url: str) -> str:
    return (f"use the server's base URL: {base_url}, {base_url}/v1 or {base_url}/v1/rerank all work "
            "(the client adds the route)")


def connection_hint(url: httpx.URL, reason: str) -> str:
    """The likeliest fix for a connection that failed: a missing port, Docker's localhost, a misspelt host."""
    host, port = url.host, url.port or (443 if url.scheme == "https" else 80)
    if host in _LOCAL_HOSTS and url.port is None:
        return (f"the URL has no port, so port {port} was tried: rerank-kit listens on "
                f"http://{host}:{DEFAULT_PORT} by default (from Docker: http://host.docker.internal:{DEFAULT_PORT})")
    if host in _LOCAL_HOSTS:
        return (f"is `rerank-kit serve` running on port {port}? From Docker, use "
                f"http://host.docker.internal:{port} instead of localhost")
    if host == "host.docker.internal":
        return (f"host.docker.internal only resolves inside Docker (on Linux add extra_hosts: "
                f"host.docker.internal:host-gateway); outside Docker use http://localhost:{port}")
    if re.search(r"not known|nodename|getaddrinfo|resolution|resolve", reason, re.IGNORECASE):
        return f"the host name {host!r} does not resolve: check the spelling of the URL"
    return f"check that the server is running and that {host}:{port} is reachable from here (firewall, network)"
