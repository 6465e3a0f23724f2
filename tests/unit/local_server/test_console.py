"""The console's routes (local_server/console/) in process: the page and its assets with their headers, which
routes the key guards, RERANK_CONSOLE=false, the connect values (the start-up printout's own code), where the Dify
check may send requests (only to this server), and the static files' size and self-containment. The page itself
runs in a real browser in tests/e2e/console/."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from local_server import console
from local_server.app import create_app
from local_server.paste import paste_guide
from local_server.registry import ServedModel, ServedModels
from local_server.settings import Settings

KEY = "sk-console"
# The page's size, stated in docs/server.md ("Console"): every file under local_server/console/static/.
MAX_STATIC_BYTES = 40 * 1024


def client(**values: object) -> TestClient:
    settings = Settings(model="tiny", offline=True, backend="onnx", **values)
    models = ServedModels(settings, [ServedModel("tiny", settings, "cross-encoder")], strict=False)
    return TestClient(create_app(settings, models))


def test_the_page_and_its_assets_are_served_with_a_strict_policy() -> None:
    http = client()
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    for name in console.ASSETS:
        assert http.get(f"/console/{name}").status_code == 200, name
    assert http.get("/console/app.js").headers["content-type"].startswith("text/javascript")
    for path in ("/", "/console/app.js"):  # an uptime check's HEAD answers as GET does, without the body
        head = http.head(path)
        assert head.status_code == 200 and head.content == b"" and head.headers["content-type"], path
    missing = http.get("/console/nothing.js")
    assert missing.status_code == 404 and missing.json()["error_type"] == "NotFound"


def test_with_a_key_the_shell_is_public_and_every_data_route_needs_it() -> None:
    http = client(api_key=KEY)
    assert http.get("/").status_code == 200 and http.get("/console/app.js").status_code == 200
    for method, path in [("GET", "/stats"), ("GET", "/console/api/connect"), ("POST", "/console/api/check"),
                         ("POST", "/v1/rerank")]:
        assert http.request(method, path, json={}).status_code == 401, path
    keyed = {"Authorization": f"Bearer {KEY}"}
    assert http.get("/console/api/connect", headers=keyed).json()["api_key_required"] is True
    assert http.get("/stats", headers=keyed).status_code == 200


def test_console_false_turns_the_page_off_but_not_the_stats() -> None:
    http = client(console=False)
    for path in ("/", "/console/app.js", "/console/api/connect"):
        assert http.get(path).status_code == 404, path
    assert http.get("/stats").status_code == 200


def test_the_connect_values_are_those_serve_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "in_container", lambda: True)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    settings = Settings(model="tiny", host="0.0.0.0", port=8086, api_key=KEY)
    values = console.connect_values(settings, ["tiny"])
    printed = paste_guide("0.0.0.0", 8086, api_key_set=True, models=["tiny"], containerised=True, kubernetes=False)
    assert f"API key: {values['api_key']}" in printed and values["api_key_required"]
    assert len(values["ways"]) == 3
    for way in values["ways"]:
        assert way["title"] in printed and len(way["fields"]) == 7
        for field in way["fields"]:
            row = rf"{field['platform']} {re.escape(field['provider'])} +{field['label']} +{re.escape(field['value'])}"
            assert re.search(row + r"(\n|$)", printed), field


@pytest.mark.parametrize(("url", "checked", "note"), [
    ("http://127.0.0.1:8086", "http://127.0.0.1:8086", ""),
    ("localhost:8086/v1", "http://127.0.0.1:8086/v1", ""),
    ("http://192.168.1.9:8086", "http://127.0.0.1:8086", ""),  # the address the page was opened at
    ("http://host.docker.internal:8086/v1/rerank", "http://127.0.0.1:8086/v1/rerank", "extra_hosts"),
    ("https://127.0.0.1:8086", "https://127.0.0.1:8086", ""),  # the scheme is kept: TLS fails here as in Dify
    ("http://", "http://", ""),  # malformed: checked as is, so the plugin's own report explains it
])
def test_the_check_reaches_this_server_only(url: str, checked: str, note: str) -> None:
    found, why = console.reached_here(url, Settings(host="0.0.0.0", port=8086), ("192.168.1.9", 8086))
    assert found == checked and note in why


@pytest.mark.parametrize("url", ["http://example.com:8086", "http://127.0.0.1:9999", "http://10.0.0.1:8086"])
def test_the_check_never_sends_a_request_elsewhere(url: str) -> None:
    found, why = console.reached_here(url, Settings(host="0.0.0.0", port=8086), ("192.168.1.9", 8086))
    assert found is None and "is not an address of this server" in why


def test_the_page_is_small_and_self_contained() -> None:
    files = {path.name: path.read_text() for path in console.STATIC.iterdir()}
    assert sum(len(text.encode()) for text in files.values()) <= MAX_STATIC_BYTES
    html = files["index.html"]
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == [], "an inline script (the CSP would refuse it)"
    assert not re.search(r"\son[a-z]+=|style=|javascript:", html), "inline handlers or styles"
    for name, text in files.items():
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", text), name
        foreign = set(re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text)) - {"http://www.w3.org"}
        assert not foreign, (name, foreign)
