"""The tool provider rules (the daemon's tool schema: tool_declaration.go, config.go): provider, credentials, tools."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rerank_kit.commands.difypkg.checks.findings import Findings

TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
TOOL_CREDENTIAL_TYPES = {"secret-input", "text-input", "select", "boolean", "app-selector", "model-selector"}
TOOL_PARAMETER_TYPES = {"string", "number", "boolean", "select", "secret-input", "file", "files", "app-selector",
                        "model-selector", "any", "dynamic-select", "array", "object", "checkbox", "date",
                        "date-range"}
TOOL_PARAMETER_FORMS = {"schema", "form", "llm"}


def _named(entry: Any, i: int) -> Any:
    """How an entry of a list of mappings is named in a message: its name, else its index."""
    return entry.get("name", i) if isinstance(entry, dict) else i


def _credentials(found: Findings, forms: Any, where: str) -> None:
    """credentials_for_provider: a mapping name -> config (or a list of configs with names), as the daemon reads it."""
    if isinstance(forms, dict):
        forms = [{**form, "name": name} if isinstance(form, dict) else form for name, form in forms.items()]
    if not isinstance(forms, list):
        found.add(f"{where} must map each credential name to its form field")
        return
    for i, form in enumerate(forms):
        at = f"{where}[{_named(form, i)}]"
        if not isinstance(form, dict):
            found.add(f"{at} must be a mapping")
            continue
        found.en_us(form.get("label"), f"{at} label")
        if form.get("type") not in TOOL_CREDENTIAL_TYPES:
            found.add(f"{at} type must be one of {sorted(TOOL_CREDENTIAL_TYPES)}")
        if form.get("default") is not None and not isinstance(form["default"], str | int | float | bool):
            found.add(f"{at} default must be a string, number or boolean")
        if form.get("type") == "select" and not form.get("options"):
            found.add(f"{at} is a select without options")


def _identity(found: Findings, identity: Mapping[str, Any], path: str) -> None:
    """What a tool and a tool provider's identity both need: author, a plain name, an en_US label."""
    found.require(identity, "author", f"{path} identity")
    if not TOOL_NAME_RE.match(str(identity.get("name", ""))):
        found.add(f"{path}: identity.name must match ^[a-zA-Z0-9_-]+$")
    found.en_us(identity.get("label"), f"{path} identity.label")


def _parameters(found: Findings, parameters: Any, path: str) -> None:
    if not isinstance(parameters, list):
        found.add(f"{path}: parameters must be a list")
        parameters = []
    for i, parameter in enumerate(parameters):
        at = f"{path} parameters[{_named(parameter, i)}]"
        if not isinstance(parameter, dict) or not str(parameter.get("name") or "").strip():
            found.add(f"{at} needs a name")
            continue
        found.en_us(parameter.get("label"), f"{at} label")
        found.en_us(parameter.get("human_description"), f"{at} human_description")
        if parameter.get("type") not in TOOL_PARAMETER_TYPES:
            found.add(f"{at} type must be one of {sorted(TOOL_PARAMETER_TYPES)}")
        if parameter.get("form") not in TOOL_PARAMETER_FORMS:
            found.add(f"{at} form must be one of {sorted(TOOL_PARAMETER_FORMS)}")
        if parameter.get("multiple") and parameter.get("type") not in ("select", "dynamic-select"):
            found.add(f"{at}: multiple is only valid for select and dynamic-select parameters")


def _tool(found: Findings, path: str) -> None:
    tool = found.yaml(path)
    if not tool:
        return
    _identity(found, tool.get("identity") or {}, path)
    description = tool.get("description") or {}
    found.en_us(description.get("human"), f"{path} description.human")
    found.require(description, "llm", f"{path} description")
    _parameters(found, tool.get("parameters") or [], path)
    if "output_schema" in tool and not isinstance(tool["output_schema"], dict):
        found.add(f"{path}: output_schema must be a mapping (a JSON schema)")
    found.source(path, ((tool.get("extra") or {}).get("python") or {}).get("source"))


def check_tool_provider(found: Findings, path: str) -> None:
    p = found.yaml(path)
    if not p:
        return
    identity = p.get("identity") or {}
    _identity(found, identity, path)
    found.en_us(identity.get("description"), f"{path} identity.description")  # the SDK requires it
    found.require(identity, "icon", f"{path} identity")
    found.icon(identity.get("icon"), f"{path} identity.icon")
    found.icon(identity.get("icon_dark"), f"{path} identity.icon_dark")
    found.tags(identity.get("tags"), f"{path} identity.tags")
    credentials = p.get("credentials_for_provider", p.get("credentials_schema"))
    if credentials is not None:
        _credentials(found, credentials, f"{path} credentials_for_provider")
    tools = p.get("tools")
    if not isinstance(tools, list) or not tools or not all(isinstance(t, str) for t in tools):
        found.add(f"{path}: tools must list the tool YAML files")
        tools = []
    for tool_path in tools:
        _tool(found, tool_path)
    found.source(path, ((p.get("extra") or {}).get("python") or {}).get("source"))
