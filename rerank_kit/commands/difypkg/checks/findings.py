"""What validation finds in one plugin root: the files under review and every problem, in the order met.

Each check (the manifest, a model provider, a tool provider, the imports) adds to one `Findings`; its
methods are the rules several checks share: a required field, an en_US text, icons in `_assets/`, tags,
a Python source named by a YAML, a YAML file that must be a mapping.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from rerank_kit.commands.difypkg.errors import PackageError

# The daemon's manifest PluginTag values (plugin_entities).
PLUGIN_TAGS = {"search", "image", "videos", "weather", "finance", "design", "travel", "social", "news", "medical",
               "productivity", "education", "business", "entertainment", "utilities", "agent", "rag", "other",
               "trigger"}


class Findings:
    """The files being validated and the problems found so far; `raise_if_any` ends the validation."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self.files = files
        self.problems: list[str] = []

    def add(self, *problems: str) -> None:
        self.problems.extend(problems)

    def extend(self, problems: Iterable[str]) -> None:
        self.problems.extend(problems)

    def raise_if_any(self) -> None:
        if self.problems:
            raise PackageError(self.problems)

    def require(self, data: Mapping[str, Any], key: str, where: str) -> None:
        if not str(data.get(key) or "").strip():
            self.add(f"{where}: {key} is required")

    def en_us(self, value: Any, where: str) -> None:
        if not isinstance(value, dict) or not str(value.get("en_US") or "").strip():
            self.add(f"{where} needs an en_US text")

    def icon(self, value: Any, where: str) -> None:
        names = value.values() if isinstance(value, dict) else [value]
        self.extend(f"{where} {name!r} is not in _assets/" for name in names
                    if name and f"_assets/{name}" not in self.files)

    def tags(self, value: Any, where: str) -> None:
        if value is not None and (not isinstance(value, list) or not set(map(str, value)) <= PLUGIN_TAGS):
            self.add(f"{where} must be a list of {sorted(PLUGIN_TAGS)}")

    def source(self, path: str, source: Any) -> None:
        """A Python source named by a YAML: present, and not loaded as dify_plugin.* (which would shadow the SDK)."""
        if not source:
            self.add(f"{path}: extra.python.source is required")
            return
        if source not in self.files:
            self.add(f"{path}: source {source!r} is not in the package")
        if str(source).split("/")[0] == "dify_plugin":
            self.add(f"{path}: source {source!r} would load as dify_plugin.* and shadow the SDK")

    def yaml(self, path: str) -> dict[str, Any]:
        """The YAML mapping at `path`; {} (and a problem) when it is missing, invalid or not a mapping."""
        if path not in self.files:
            self.add(f"{path} is missing")
            return {}
        try:
            data = yaml.safe_load(self.files[path])
        except yaml.YAMLError as error:
            self.add(f"{path} is not valid YAML: {error}")
            return {}
        if not isinstance(data, dict):
            self.add(f"{path} must be a YAML mapping")
            return {}
        return data
