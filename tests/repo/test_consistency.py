"""Cheap guards that the docs, examples and scripts stay in step with the code."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from local_server.settings import Settings
from tests.support import REPO_ROOT as ROOT


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    variable = f"RERANK_{name.upper()}"
    assert variable in (ROOT / "docs" / "server.md").read_text(), f"{variable} missing from docs/server.md"
    if name != "cache_dir":
        assert variable in (ROOT / "conf" / "server.env.example").read_text()


@pytest.mark.parametrize("script", sorted((ROOT / "scripts").glob("*.sh")), ids=lambda p: p.name)
def test_shell_scripts_parse_and_explain_themselves(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True)
    shown = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0 and shown.stdout.strip(), shown.stderr
