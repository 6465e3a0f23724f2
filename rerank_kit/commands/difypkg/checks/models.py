"""The model provider rules: the provider YAML, its credential forms and each predefined model's YAML."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

from rerank_kit.commands.difypkg.checks.findings import Findings

MODEL_TYPES = {"llm", "text-embedding", "rerank", "speech2text", "moderation", "tts", "text2img",
               "multimodal-embedding", "multimodal-rerank"}
MODEL_TYPE_KEYS = {"llm", "text_embedding", "rerank", "tts", "speech2text", "moderation"}
CONFIGURATE_METHODS = {"predefined-model", "customizable-model"}
FORM_TYPES = {"text-input", "secret-input", "select", "radio", "switch"}
ICON_FIELDS = ("icon_small", "icon_large", "icon_small_dark", "icon_large_dark")


def _forms(found: Findings, forms: Any, where: str) -> None:
    if not isinstance(forms, list):
        found.add(f"{where}.credential_form_schemas must be a list")
        return
    for i, form in enumerate(forms):
        at = f"{where}.credential_form_schemas[{i}]"
        if not isinstance(form, dict) or not form.get("variable"):
            found.add(f"{at} needs a variable")
            continue
        found.en_us(form.get("label"), f"{at} ({form['variable']}) label")
        if form.get("type") not in FORM_TYPES:
            found.add(f"{at} ({form['variable']}) type must be one of {sorted(FORM_TYPES)}")
        if "default" in form and not isinstance(form["default"], str | None):
            found.add(f"{at} ({form['variable']}) default must be a string: quote it")


def _glob_matches(pattern: str, path: str) -> bool:
    """Go's filepath.Match: `*` never crosses a `/`."""
    pattern_parts, path_parts = pattern.split("/"), path.split("/")
    return len(pattern_parts) == len(path_parts) and all(
        fnmatch.fnmatchcase(p, q) for p, q in zip(path_parts, pattern_parts, strict=True))


def _model(found: Findings, path: str, supported: list[Any]) -> None:
    model = found.yaml(path)
    if not model:
        return
    found.require(model, "model", path)
    found.en_us(model.get("label"), f"{path} label")
    if model.get("model_type") not in supported:
        found.add(f"{path}: model_type {model.get('model_type')!r} is not in supported_model_types")
    properties = model.get("model_properties")
    if not isinstance(properties, dict):
        found.add(f"{path}: model_properties must be a mapping")
    elif "context_size" in properties and (not isinstance(properties["context_size"], int)
                                           or properties["context_size"] <= 0):
        found.add(f"{path}: model_properties.context_size must be a positive integer")


def _credential_schemas(found: Findings, p: Mapping[str, Any], path: str, methods: list[Any]) -> None:
    if "provider_credential_schema" in p:
        _forms(found, (p["provider_credential_schema"] or {}).get("credential_form_schemas"),
               f"{path} provider_credential_schema")
    model_schema = p.get("model_credential_schema")
    if "customizable-model" in methods and not model_schema:
        found.add(f"{path}: customizable-model needs a model_credential_schema")
    if model_schema:
        found.en_us((model_schema.get("model") or {}).get("label"), f"{path} model_credential_schema.model label")
        _forms(found, model_schema.get("credential_form_schemas"), f"{path} model_credential_schema")


def _models(found: Findings, models: Any, path: str, supported: list[Any]) -> None:
    if not isinstance(models, dict):
        found.add(f"{path}: models must be a mapping like {{rerank: {{predefined: [models/rerank/*.yaml]}}}}")
        models = {}
    for model_type, spec in models.items():
        if model_type not in MODEL_TYPE_KEYS:
            found.add(f"{path}: models.{model_type} is not a model type key")
            continue
        for pattern in (spec or {}).get("predefined", []):
            matched = [f for f in found.files if _glob_matches(pattern, f) and not f.endswith("_position.yaml")]
            if not matched:
                found.add(f"{path}: models.{model_type}.predefined {pattern!r} matches no file")
            for model_path in matched:
                _model(found, model_path, supported)


def check_model_provider(found: Findings, path: str) -> None:
    p = found.yaml(path)
    if not p:
        return
    found.require(p, "provider", path)
    found.en_us(p.get("label"), f"{path} label")
    for field in ICON_FIELDS:
        found.icon(p.get(field), f"{path} {field}")
    supported = p.get("supported_model_types") or []
    if not supported or not set(supported) <= MODEL_TYPES:
        found.add(f"{path}: supported_model_types must be a non-empty subset of {sorted(MODEL_TYPES)}")
    methods = p.get("configurate_methods") or []
    if not methods or not set(methods) <= CONFIGURATE_METHODS:
        found.add(f"{path}: configurate_methods must be a non-empty subset of {sorted(CONFIGURATE_METHODS)}")
    _credential_schemas(found, p, path, methods)
    _models(found, p.get("models", {}), path, supported)
    python = (p.get("extra") or {}).get("python") or {}
    found.require(python, "provider_source", f"{path} extra.python")
    for source in filter(None, [python.get("provider_source"), *python.get("model_sources", [])]):
        found.source(path, source)
