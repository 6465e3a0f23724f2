"""Validation of a plugin root or package: what Dify's daemon checks when it decodes a package, plus what
the Python runner needs. Every problem is reported at once, in one PackageError.

- `findings`: the problems found so far, and the rules several checks share;
- `manifest`: manifest.yaml (fields and regexes, icons in `_assets/`, one kind of plugin, README.md);
- `models`: the model provider and model YAML; `tools`: the tool provider and tool YAML;
- `imports`: sources present, every import installable from requirements.txt, no server-side code.
"""

from __future__ import annotations

from collections.abc import Mapping

from rerank_kit.commands import wheels
from rerank_kit.commands.difypkg.checks.findings import Findings
from rerank_kit.commands.difypkg.checks.imports import check_imports
from rerank_kit.commands.difypkg.checks.manifest import check_manifest
from rerank_kit.commands.difypkg.checks.models import check_model_provider
from rerank_kit.commands.difypkg.checks.tools import check_tool_provider


def validate(files: Mapping[str, bytes]) -> None:
    """Raise PackageError listing every problem Dify's daemon (or the plugin's runner) would hit."""
    found = Findings(files)
    plugins = check_manifest(found).get("plugins") or {}
    for provider_path in plugins.get("models") or []:
        check_model_provider(found, provider_path)
    for provider_path in plugins.get("tools") or []:
        check_tool_provider(found, provider_path)
    check_imports(found)
    found.extend(wheels.offline_problems(files))
    found.raise_if_any()
