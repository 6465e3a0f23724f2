"""The console with RERANK_API_KEY set, in a real browser: the page asks for the key once, keeps it for the tab
only (sessionStorage), sends it as a header and never in a URL; without it every data call is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.console.conftest import Watched
from tests.support.browser import screenshot_to
from tests.support.server_process import running_server

KEY = "sk-console-test"
DATA_PATHS = ("/stats", "/console/api/connect", "/console/api/check", "/v1/rerank")


@pytest.fixture(scope="module")
def keyed(tiny_model_dir: Path) -> Iterator[str]:
    with running_server(tiny_model_dir, api_key=KEY, backend="torch") as url:
        yield url


def test_without_the_key_the_page_asks_and_no_data_is_served(keyed: str, open_page) -> None:
    page = open_page(f"{keyed}/").page
    page.wait_for_selector("#key-form")
    assert page.is_hidden("#tabs") and page.is_hidden("#views")
    for path in DATA_PATHS:
        assert httpx.request("POST" if "check" in path or "rerank" in path else "GET", f"{keyed}{path}",
                             json={}).status_code == 401, path
    screenshot_to(page, "key")
    page.fill("#key-input", "not-the-key")
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#key-error:has-text('refused')")
    assert page.is_hidden("#tabs") and page.evaluate("sessionStorage.length") == 0


def test_with_the_key_everything_works_and_the_key_stays_in_headers(keyed: str, open_page) -> None:
    watched: Watched = open_page(f"{keyed}/")
    page = watched.page
    page.wait_for_selector("#key-form")
    asked = len(watched.requests)  # the page's first call, without a key, got the 401 that made it ask
    page.fill("#key-input", KEY)
    page.press("#key-input", "Enter")
    page.wait_for_selector("#ov-models tbody tr")
    assert page.evaluate("sessionStorage.getItem('rerank-kit-key')") == KEY
    page.click("#tab-connect")
    assert "API key: the server's RERANK_API_KEY" in page.inner_text("#cn-key")
    page.fill("#cn-apikey", KEY)
    page.click("#cn-check button[type=submit]")
    page.wait_for_selector("#cn-verdict .verdict.ok")
    page.click("#tab-try")
    page.click("#try-form button[type=submit]")
    page.wait_for_selector("#try-results li.doc")
    assert "Authorization: Bearer $RERANK_API_KEY" in page.inner_text(".curl pre")  # the variable, not the key
    calls = [(url, headers) for _, url, headers in watched.requests[asked:]
             if url.removeprefix(keyed).startswith(DATA_PATHS)]
    assert {url.removeprefix(keyed) for url, _ in calls} >= set(DATA_PATHS)
    assert all(headers.get("authorization") == f"Bearer {KEY}" for _, headers in calls)
    assert not [url for _, url, _ in watched.requests if KEY in url]
    assert KEY not in page.inner_text("body")
    other_tab = open_page(f"{keyed}/").page  # a new tab has its own sessionStorage: it asks again
    other_tab.wait_for_selector("#key-form")
    page.click("#forget-key")
    page.wait_for_selector("#key-form")
    assert page.evaluate("sessionStorage.length") == 0
