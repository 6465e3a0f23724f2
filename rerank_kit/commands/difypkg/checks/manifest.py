"""The manifest.yaml rules the daemon applies when it decodes a package (fields, regexes, one kind of plugin)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from rerank_kit.commands.difypkg.checks.findings import Findings

VERSION_RE = re.compile(r"^\d{1,4}(\.\d{1,4}){2}(-\w{1,16})?$")
AUTHOR_RE = re.compile(r"^[a-z0-9_-]{1,64}$")
NAME_RE = re.compile(r"^[a-z0-9_-]{1,128}$")
ARCHES = {"amd64", "arm64"}
OTHER_EXTENSIONS = ("tools", "endpoints", "agent_strategies", "datasources", "triggers")


def _timestamp(value: Any) -> bool:
    if isinstance(value, dt.datetime):
        return value.tzinfo is not None
    try:
        return dt.datetime.fromisoformat(str(value)).tzinfo is not None
    except ValueError:
        return False


def _meta(found: Findings, meta: Mapping[str, Any]) -> None:
    runner = meta.get("runner") or {}
    if not VERSION_RE.match(str(meta.get("version", ""))):
        found.add("manifest.yaml: meta.version must look like 0.0.1")
    arch = meta.get("arch")
    if not arch or not set(arch) <= ARCHES:
        found.add(f"manifest.yaml: meta.arch must be a non-empty subset of {sorted(ARCHES)}")
    if runner.get("language") != "python" or not str(runner.get("version", "")).strip():
        found.add("manifest.yaml: meta.runner needs language: python and a version")
    elif f"{runner.get('entrypoint')}.py" not in found.files:
        found.add(f"manifest.yaml: meta.runner.entrypoint {runner.get('entrypoint')!r} has no .py file")


def _plugins(found: Findings, plugins: Mapping[str, Any]) -> None:
    """The daemon: a model provider cannot come with tools (or endpoints, ...) in one plugin."""
    if plugins.get("models"):
        found.extend(f"manifest.yaml: a model plugin cannot also declare plugins.{kind}"
                     for kind in OTHER_EXTENSIONS if plugins.get(kind))
    elif plugins.get("tools"):
        if plugins.get("agent_strategies"):
            found.add("manifest.yaml: a tool plugin cannot also declare plugins.agent_strategies")
    else:
        found.add("manifest.yaml: plugins.models (a model provider) or plugins.tools (a tool provider) "
                  "must list the provider YAML")


def check_manifest(found: Findings) -> dict[str, Any]:
    """The manifest's problems; returns the manifest ({} when it cannot be read)."""
    m = found.yaml("manifest.yaml")
    if not m:
        return m
    checks = [
        (VERSION_RE.match(str(m.get("version", ""))), "version must look like 1.2.3 or 1.2.3-beta"),
        (m.get("type") == "plugin", "type must be 'plugin'"),
        (AUTHOR_RE.match(str(m.get("author", ""))), "author must match ^[a-z0-9_-]{1,64}$"),
        (NAME_RE.match(str(m.get("name", ""))), "name must match ^[a-z0-9_-]{1,128}$"),
        (_timestamp(m.get("created_at")), "created_at must be an RFC3339 time with a zone"),
    ]
    found.extend(f"manifest.yaml: {message}" for ok, message in checks if not ok)
    found.en_us(m.get("label"), "manifest.yaml label")
    found.en_us(m.get("description"), "manifest.yaml description")
    found.require(m, "icon", "manifest.yaml")
    found.icon(m.get("icon"), "manifest.yaml icon")
    found.icon(m.get("icon_dark"), "manifest.yaml icon_dark")
    resource = m.get("resource") or {}
    if not isinstance(resource.get("memory"), int) or resource["memory"] <= 0:
        found.add("manifest.yaml: resource.memory must be a positive number of bytes")
    _meta(found, m.get("meta") or {})
    privacy = m.get("privacy")
    if privacy and privacy not in found.files:
        found.add(f"manifest.yaml: privacy file {privacy!r} is missing")
    _plugins(found, m.get("plugins") or {})
    found.tags(m.get("tags"), "manifest.yaml tags")
    if "README.md" not in found.files:
        found.add("README.md is missing (Dify shows it as the plugin's en_US readme)")
    return m
