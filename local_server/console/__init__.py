"""The web console: a static page (`static/`, package data, no build step) served at `/`, and the two JSON routes
only it needs: what to paste where (`local_server.paste`, the code that prints it at start) and the credential
check of the Dify plugins (`rerank_kit.client.forms.check_credentials`, the code they run).

The page and its assets are public even with a key, so the key prompt can render; every data call needs the key.
Everything else the page shows comes from the ordinary API (`/stats`, `/v1/models`, `/v1/rerank`).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response

from local_server.api.bodies import json_response, read_json
from local_server.api.routes import serving
from local_server.errors import ApiError, ErrorType
from local_server.paste import FIELDS, api_key_advice, in_container, in_kubernetes, kubernetes_advice, ways
from local_server.settings import Settings
from rerank_kit.client.forms import check_credentials
from rerank_kit.client.urls import normalize_base_url
from rerank_kit.errors import ConfigurationError

STATIC = Path(__file__).parent / "static"
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
ASSETS = {path.name: path for path in sorted(STATIC.iterdir()) if path.suffix in _TYPES and path.name != "index.html"}
# What the page may load and call: this origin only, no inline script or style, never framed.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache"}
# Public even with a key: the shell and its assets hold no data.
PUBLIC_PATHS = frozenset({"/", *(f"/console/{name}" for name in ASSETS)})
_CHECK_BODY_BYTES = 64 * 1024


def _file(path: Path) -> Response:
    return Response(path.read_bytes(), media_type=_TYPES[path.suffix], headers=_HEADERS)


async def page(request: Request) -> Response:
    return _file(STATIC / "index.html")


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in ASSETS:
        raise ApiError(ErrorType.NOT_FOUND, f"no console file {name!r}")
    return _file(ASSETS[name])


def connect_values(settings: Settings, models: list[str]) -> dict[str, Any]:
    """Per way of reaching this server, every Dify and RAGFlow field with its value: what `serve` prints."""
    found: dict[str, Any] = {"models": models, "api_key_required": bool(settings.api_key),
                             "api_key": api_key_advice(bool(settings.api_key)), "ways": []}
    if in_kubernetes():
        found["kubernetes"] = kubernetes_advice(settings.port)
        return found
    for way in ways(settings.host, settings.port, containerised=in_container()):
        fields = [] if way.base_url is None else [
            {"platform": f.platform, "provider": f.provider, "label": f.label, "value": f.value(way.base_url)}
            for f in FIELDS]
        found["ways"].append({"title": way.title, "base_url": way.base_url, "note": way.note, "fields": fields})
    return found


async def connect(request: Request) -> Response:
    state = serving(request)
    return json_response(connect_values(state.settings, state.models.names))


def reached_here(url: str, settings: Settings, page_host: tuple[str | None, int | None]) -> tuple[str | None, str]:
    """The URL to check from this process for a URL Dify would use: the same scheme and path on the address this
    host reaches the server at, and a note on what that leaves unchecked. None (and why) when the URL names
    another server: the check never sends requests anywhere else.
    A malformed URL is returned as it is, for the check to report as the plugin would."""
    try:
        base = httpx.URL(normalize_base_url(url))
    except ConfigurationError:
        return url, ""
    own = [way for way in ways(settings.host, settings.port, containerised=in_container()) if way.base_url]
    known = {(httpx.URL(way.base_url).host, settings.port) for way in own}
    known |= {("localhost", settings.port), ("127.0.0.1", settings.port), ("::1", settings.port), page_host}
    port = base.port or (443 if base.scheme == "https" else 80)
    if (base.host, port) not in known:
        addresses = ", ".join(str(way.base_url) for way in own)
        return None, f"{base.host}:{port} is not an address of this server (it is reached at {addresses})"
    local = httpx.URL(own[-1].base_url or "")
    rest = re.sub(r"^(?:https?://)+", "", url.strip(), flags=re.IGNORECASE)
    checked = f"{base.scheme}://{local.netloc.decode()}{rest[rest.index('/'):] if '/' in rest else ''}"
    container = next((way for way in own[:-1] if httpx.URL(way.base_url or "").host == base.host), None)
    if container is None or base.host == local.host:
        return checked, ""
    return checked, (f"checked from the server's host at {local.host}:{local.port}; {container.title} reaches it "
                     f"at {base.host}" + (f" ({container.note})" if container.note else ""))


async def check(request: Request) -> Response:
    """`check_credentials`, the Dify plugins' own validation, for the form a person would fill in; its verdict."""
    state = serving(request)
    data = await read_json(request, _CHECK_BODY_BYTES)
    form = {"server_url": str(data.get("server_url") or ""), "api_key": str(data.get("api_key") or "")}
    model = str(data.get("model") or "") or None
    url, note = reached_here(form["server_url"], state.settings, (request.url.hostname, request.url.port))
    if url is None:
        return json_response({"ok": False, "message": note, "hint": "paste one of the values Connect lists",
                              "checked_url": None, "note": ""})
    report = await asyncio.to_thread(check_credentials, {**form, "server_url": url}, model)
    return json_response({"ok": report.ok, "message": report.message,
                          "hint": report.error.hint if report.error else None, "checked_url": url, "note": note,
                          "model": report.model, "max_input_length": report.max_input_length})


def add_console(app: FastAPI) -> None:
    """The console's routes (left out of the OpenAPI document: they are the page's, not an API)."""
    hidden: dict[str, Any] = {"include_in_schema": False}
    app.add_api_route("/", page, methods=["GET", "HEAD"], **hidden)  # HEAD: uptime checks of the printed URL
    app.add_api_route("/console/api/connect", connect, methods=["GET"], **hidden)
    app.add_api_route("/console/api/check", check, methods=["POST"], **hidden)
    app.add_api_route("/console/{name}", asset, methods=["GET", "HEAD"], **hidden)
