"""The console's browser: one headless Chromium for this package (tests.support.browser), and pages that record
what the tests assert on: console errors, uncaught exceptions and every request the page makes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.browser import chromium


@dataclass
class Watched:
    """A page and what it did: console errors, uncaught exceptions, requests (method, URL, headers)."""

    page: Any
    errors: list[str] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Stopped after this package's tests: Playwright's sync API runs an event loop in the main thread while it
    lives, and every later test that calls asyncio.run would fail beside it."""
    executable = chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    """`open_page(url)`: a fresh tab (its own sessionStorage) at `url`, watched; closed after the test."""
    contexts = []

    def opened(url: str) -> Watched:
        context = browser.new_context(viewport={"width": 1200, "height": 860})
        parts = urlsplit(url)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=f"{parts.scheme}://{parts.netloc}")
        context.set_default_timeout(10_000)
        contexts.append(context)
        watched = Watched(context.new_page())
        watched.page.on("console", lambda m: watched.errors.append(m.text) if m.type == "error" else None)
        watched.page.on("pageerror", lambda error: watched.errors.append(str(error)))
        watched.page.on("request", lambda r: watched.requests.append((r.method, r.url, r.headers)))
        watched.page.goto(url)
        return watched

    yield opened
    for context in contexts:
        context.close()
