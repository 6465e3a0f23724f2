"""A real Chromium for the console's browser tests (tests/e2e/console): Playwright (the `browser` extra) driving
the system's Chromium, never a downloaded one. In CI (RERANK_KIT_CI=1, where .ci/run installs Debian's chromium)
a missing browser fails the suite; on a developer's machine the tests skip and say how to get one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

HOW_TO_GET_IT = ("the console's browser tests need Chromium and Playwright: `sudo apt install chromium` (Debian, "
                 "Ubuntu: chromium-browser) or RERANK_KIT_CHROMIUM=/path/to/chrome, and `pip install -e '.[browser]'`"
                 " (the lock has playwright)")


def chromium() -> str:
    """The Chromium to drive; fails in CI, skips elsewhere, when there is none (or no Playwright)."""
    found = os.environ.get("RERANK_KIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    missing = None if found else "no chromium on PATH"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "playwright is not installed"
    if missing is None and found:
        return found
    if os.environ.get("RERANK_KIT_CI") == "1":
        pytest.fail(f"{missing} (RERANK_KIT_CI=1): {HOW_TO_GET_IT}")
    pytest.skip(f"{missing}: {HOW_TO_GET_IT}")


def screenshot_to(page: object, name: str) -> None:
    """Save the page as RERANK_KIT_SCREENSHOTS/<name>.png when that folder is set (`make screenshots`: docs/console)."""
    folder = os.environ.get("RERANK_KIT_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]
