"""The system tools some tests drive (QEMU, redis-server, Chromium): found, or the test is skipped with how to
get it; in CI (.ci/run installs them and sets RERANK_KIT_CI=1) a missing tool fails the test instead."""

from __future__ import annotations

import os
import shutil

import pytest


def required(executable: str, install: str, purpose: str) -> str:
    """The tool's path; `install` says how to get it (e.g. "apt-get install redis-server")."""
    found = shutil.which(executable)
    if found is None:
        message = f"{executable} is not installed: {install} ({purpose})"
        if os.environ.get("RERANK_KIT_CI"):
            pytest.fail(f"{message}; RERANK_KIT_CI is set, so this fails instead of skipping")
        pytest.skip(message)
    return found
