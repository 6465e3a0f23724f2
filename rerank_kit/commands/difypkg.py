"""Build and validate the Dify plugin packages (.difypkg): `rerank-kit package-dify [--model|--tool] [-o dist/]`.

Two plugins, because Dify refuses a manifest that declares a model provider and tools together: the model
provider (the repository's `manifest.yaml` + `dify_plugin/`) and the workflow tool (`dify_tool/`). Each
package is what Dify's Go packager (dify-plugin-daemon `plugin_packager`) would produce from a plugin
root: a Deflate zip with `/` separators, no directory entries, files sorted by path, `.difyignore`
honoured, at most 50 MB uncompressed. The root is assembled from the plugin's manifest, its sources and
the `rerank_kit` modules those sources import (found by reading the imports, never a fixed list).
Validation follows what the daemon checks when it decodes a package (manifest fields and regexes, icons
in `_assets/`, model provider and model YAML, tool provider and tool YAML, README.md) plus what the
Python runner needs (sources present, every import installable from requirements.txt).
`--offline` adds the requirements as wheels, for Dify deployments without a package index (wheels.py);
`--sign KEY.pem` signs by the daemon's rule (dify_signature.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import functools
import hashlib
import importlib.metadata
import io
import re
import sys
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from rerank_kit.commands import dify_signature, wheels
from rerank_kit.commands.vendor import CORE_PACKAGE as CLIENT_PACKAGE
from rerank_kit.commands.vendor import REPO_ROOT, imported_modules, module_file_in, module_name, vendored_core


@dataclass(frozen=True)
class PluginSource:
    """Where one plugin's root comes from in the checkout (paths relative to it)."""

    name: str  # what --model / --tool choose
    manifest: str
    sources: str  # a folder whose files become the package root
    # The pinned requirements.txt, used when `sources` has none: both plugins run the same SDK and shared
    # client, so the tool shares the model plugin's pins (one `make lock`) instead of a copy.
    requirements: str


MODEL = PluginSource("model", "manifest.yaml", "dify_plugin", "dify_plugin/requirements.txt")
TOOL = PluginSource("tool", "dify_tool/manifest.yaml", "dify_tool", "dify_plugin/requirements.txt")
PLUGINS = (MODEL, TOOL)
MAX_UNCOMPRESSED_BYTES = 50 * wheels.MIB  # Dify's default PLUGIN_MAX_PACKAGE_SIZE (daemon: MAX_PLUGIN_PACKAGE_SIZE)
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same sources give the same bytes

VERSION_RE = re.compile(r"^\d{1,4}(\.\d{1,4}){2}(-\w{1,16})?$")
AUTHOR_RE = re.compile(r"^[a-z0-9_-]{1,64}$")
NAME_RE = re.compile(r"^[a-z0-9_-]{1,128}$")
ARCHES = {"amd64", "arm64"}
MODEL_TYPES = {"llm", "text-embedding", "rerank", "speech2text", "moderation", "tts", "text2img",
               "multimodal-embedding", "multimodal-rerank"}
MODEL_TYPE_KEYS = {"llm", "text_embedding", "rerank", "tts", "speech2text", "moderation"}
CONFIGURATE_METHODS = {"predefined-model", "customizable-model"}
FORM_TYPES = {"text-input", "secret-input", "select", "radio", "switch"}
# The daemon's tool schema (plugin_entities: tool_declaration.go, config.go, manifest PluginTag).
TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
TOOL_CREDENTIAL_TYPES = {"secret-input", "text-input", "select", "boolean", "app-selector", "model-selector"}
TOOL_PARAMETER_TYPES = {"string", "number", "boolean", "select", "secret-input", "file", "files", "app-selector",
                        "model-selector", "any", "dynamic-select", "array", "object", "checkbox", "date",
                        "date-range"}
TOOL_PARAMETER_FORMS = {"schema", "form", "llm"}
PLUGIN_TAGS = {"search", "image", "videos", "weather", "finance", "design", "travel", "social", "news", "medical",
               "productivity", "education", "business", "entertainment", "utilities", "agent", "rag", "other",
               "trigger"}
ICON_FIELDS = ("icon_small", "icon_large", "icon_small_dark", "icon_large_dark")
OTHER_EXTENSIONS = ("tools", "endpoints", "agent_strategies", "datasources", "triggers")
# Heavy or server-side code must never reach the plugin's venv.
FORBIDDEN_IMPORTS = {"torch", "FlagEmbedding", "transformers", "local_server", "ragflow_integration",
                     "benchmarks"}


class PackageError(Exception):
    """The plugin root or package is invalid; the message lists every problem found."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid Dify plugin package:\n" + "\n".join(f"  - {p}" for p in self.problems))


@dataclass(frozen=True)
class Package:
    path: Path
    identity: str  # author/name:version@checksum, as Dify names an installed package
    files: tuple[str, ...]
    uncompressed: int  # what the daemon compares with MAX_PLUGIN_PACKAGE_SIZE; the upload is path's size


# ---------------------------------------------------------------- .difyignore (gitignore subset)

def _glob_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


@dataclass(frozen=True)
class IgnorePattern:
    regex: re.Pattern[str]
    anchored: bool  # contains a slash: matched against the whole relative path
    dir_only: bool

    @classmethod
    def parse(cls, line: str) -> IgnorePattern:
        dir_only = line.endswith("/")
        body = line.rstrip("/")
        anchored = "/" in body
        return cls(_glob_regex(body.lstrip("/")), anchored, dir_only)

    def matches(self, rel_path: str, is_dir: bool) -> bool:
        if self.dir_only and not is_dir:
            return False
        return bool(self.regex.match(rel_path if self.anchored else rel_path.rsplit("/", 1)[-1]))


def ignore_patterns(text: str) -> list[IgnorePattern]:
    """Patterns of a .difyignore; like the Go packager, `!` lines never re-include anything."""
    lines = (line.strip() for line in text.splitlines())
    return [IgnorePattern.parse(line) for line in lines if line and not line.startswith(("#", "!"))]


def is_ignored(rel_path: str, patterns: list[IgnorePattern]) -> bool:
    """True when the file or any folder above it matches a pattern."""
    parts = rel_path.split("/")
    candidates = [("/".join(parts[:n]), n < len(parts)) for n in range(1, len(parts) + 1)]
    return any(p.matches(path, is_dir) for path, is_dir in candidates for p in patterns)


# ---------------------------------------------------------------- imports

@functools.cache
def _distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


@functools.cache
def _installed_closure(names: frozenset[str]) -> set[str]:
    """Requirement names plus whatever they pull in, as far as this environment knows."""
    closure, pending = set(names), list(names)
    while pending:
        try:
            requires = importlib.metadata.requires(pending.pop()) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for requirement in requires:
            if "extra ==" in requirement:
                continue
            dep = wheels.normalise(re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0])
            if dep not in closure:
                closure.add(dep)
                pending.append(dep)
    return closure


# ---------------------------------------------------------------- assembling the plugin root

def plugin_root_files(root: Path = REPO_ROOT, plugin: PluginSource = MODEL) -> dict[str, bytes]:
    """Every file of the plugin's standard root, by its path inside the package."""
    sources_dir = root / plugin.sources
    manifest = root / plugin.manifest
    if not manifest.is_file() or not sources_dir.is_dir():
        raise PackageError([f"{root} is not a rerank-kit checkout (the {plugin.name} plugin needs {plugin.manifest} "
                            f"and {plugin.sources}/): pass --root"])
    ignore_file = next((sources_dir / n for n in (".difyignore", ".gitignore") if (sources_dir / n).is_file()), None)
    patterns = ignore_patterns(ignore_file.read_text(encoding="utf-8")) if ignore_file else []
    files = {"manifest.yaml": manifest.read_bytes()}
    for path in sorted(sources_dir.rglob("*")):
        rel = path.relative_to(sources_dir).as_posix()
        if path.is_file() and not is_ignored(rel, patterns):
            files[rel] = path.read_bytes()
    clashes = [rel for rel in files if rel.split("/")[0] == CLIENT_PACKAGE]
    if clashes:
        raise PackageError([f"{plugin.sources}/{c} clashes with the bundled {CLIENT_PACKAGE} package" for c in clashes])
    if "requirements.txt" not in files and (root / plugin.requirements).is_file():
        files["requirements.txt"] = (root / plugin.requirements).read_bytes()
    files.update(vendored_core(files, root))
    return dict(sorted(files.items()))


def checksum(files: Mapping[str, bytes]) -> str:
    """The daemon's package checksum: sha256 over sorted paths of sha256(path) + sha256(content)."""
    digest = b"".join(hashlib.sha256(p.encode()).digest() + hashlib.sha256(files[p]).digest() for p in sorted(files))
    return hashlib.sha256(digest).hexdigest()


def identity(files: Mapping[str, bytes]) -> str:
    manifest = yaml.safe_load(files["manifest.yaml"])
    return f"{manifest['author']}/{manifest['name']}:{manifest['version']}@{checksum(files)}"


def _too_large(what: str, size: int, max_size: int, files: Mapping[str, bytes]) -> PackageError:
    largest = sorted(files, key=lambda p: len(files[p]), reverse=True)[:5]
    advice = ("; an offline package for fewer platforms (--platform) is smaller, or raise Dify's "
              "PLUGIN_MAX_PACKAGE_SIZE and --max-size" if any(p.startswith(wheels.WHEELS_DIR) for p in files) else "")
    return PackageError([f"{what} {size} bytes ({size / wheels.MIB:.1f} MiB) exceeds {max_size}; largest: "
                         + ", ".join(f"{p} ({len(files[p])} bytes)" for p in largest) + advice])


def zip_bytes(files: Mapping[str, bytes], max_size: int = MAX_UNCOMPRESSED_BYTES) -> bytes:
    """The package, refused when it or its content is over `max_size` (Dify checks the upload and the content)."""
    total = sum(len(data) for data in files.values())
    if total > max_size:
        raise _too_large("uncompressed size", total, max_size, files)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(files):
            info = zipfile.ZipInfo(path, ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so the permission bits below mean what they say
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[path])
    if buffer.tell() > max_size:  # wheels hardly compress: the zip can outgrow its content
        raise _too_large("package size", buffer.tell(), max_size, files)
    return buffer.getvalue()


def read_package(path: Path, max_size: int = MAX_UNCOMPRESSED_BYTES) -> dict[str, bytes]:
    """The files of a .difypkg, refusing what the daemon refuses (unsafe paths, over-size)."""
    problems, files = [], {}
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        if sum(info.file_size for info in infos) > max_size:
            problems.append(f"uncompressed size exceeds {max_size} bytes")
        for info in infos:
            name = info.filename
            if "\\" in name or name.startswith("/") or ".." in name.split("/"):
                problems.append(f"unsafe path in package: {name!r}")
            elif info.is_dir():
                problems.append(f"directory entry in package: {name!r} (the Go packager writes files only)")
            else:
                files[name] = archive.read(info)
    if problems:
        raise PackageError(problems)
    return files


# ---------------------------------------------------------------- validation

def _required(data: Mapping[str, Any], key: str, where: str, problems: list[str]) -> None:
    if not str(data.get(key) or "").strip():
        problems.append(f"{where}: {key} is required")


def _en_us(value: Any, where: str, problems: list[str]) -> None:
    if not isinstance(value, dict) or not str(value.get("en_US") or "").strip():
        problems.append(f"{where} needs an en_US text")


def _icon(value: Any, where: str, files: Mapping[str, bytes], problems: list[str]) -> None:
    names = value.values() if isinstance(value, dict) else [value]
    problems += [f"{where} {name!r} is not in _assets/" for name in names
                 if name and f"_assets/{name}" not in files]


def _yaml(files: Mapping[str, bytes], path: str, problems: list[str]) -> dict[str, Any]:
    if path not in files:
        problems.append(f"{path} is missing")
        return {}
    try:
        data = yaml.safe_load(files[path])
    except yaml.YAMLError as error:
        problems.append(f"{path} is not valid YAML: {error}")
        return {}
    if not isinstance(data, dict):
        problems.append(f"{path} must be a YAML mapping")
        return {}
    return data


def _timestamp(value: Any) -> bool:
    if isinstance(value, dt.datetime):
        return value.tzinfo is not None
    try:
        return dt.datetime.fromisoformat(str(value)).tzinfo is not None
    except ValueError:
        return False


def _validate_manifest(files: Mapping[str, bytes], problems: list[str]) -> dict[str, Any]:
    m = _yaml(files, "manifest.yaml", problems)
    if not m:
        return m
    checks = [
        (VERSION_RE.match(str(m.get("version", ""))), "version must look like 1.2.3 or 1.2.3-beta"),
        (m.get("type") == "plugin", "type must be 'plugin'"),
        (AUTHOR_RE.match(str(m.get("author", ""))), "author must match ^[a-z0-9_-]{1,64}$"),
        (NAME_RE.match(str(m.get("name", ""))), "name must match ^[a-z0-9_-]{1,128}$"),
        (_timestamp(m.get("created_at")), "created_at must be an RFC3339 time with a zone"),
    ]
    problems += [f"manifest.yaml: {message}" for ok, message in checks if not ok]
    _en_us(m.get("label"), "manifest.yaml label", problems)
    _en_us(m.get("description"), "manifest.yaml description", problems)
    _required(m, "icon", "manifest.yaml", problems)
    _icon(m.get("icon"), "manifest.yaml icon", files, problems)
    _icon(m.get("icon_dark"), "manifest.yaml icon_dark", files, problems)
    resource = m.get("resource") or {}
    if not isinstance(resource.get("memory"), int) or resource["memory"] <= 0:
        problems.append("manifest.yaml: resource.memory must be a positive number of bytes")
    meta = m.get("meta") or {}
    runner = meta.get("runner") or {}
    if not VERSION_RE.match(str(meta.get("version", ""))):
        problems.append("manifest.yaml: meta.version must look like 0.0.1")
    arch = meta.get("arch")
    if not arch or not set(arch) <= ARCHES:
        problems.append(f"manifest.yaml: meta.arch must be a non-empty subset of {sorted(ARCHES)}")
    if runner.get("language") != "python" or not str(runner.get("version", "")).strip():
        problems.append("manifest.yaml: meta.runner needs language: python and a version")
    elif f"{runner.get('entrypoint')}.py" not in files:
        problems.append(f"manifest.yaml: meta.runner.entrypoint {runner.get('entrypoint')!r} has no .py file")
    privacy = m.get("privacy")
    if privacy and privacy not in files:
        problems.append(f"manifest.yaml: privacy file {privacy!r} is missing")
    plugins = m.get("plugins") or {}
    if plugins.get("models"):  # the daemon: model and tool (or endpoint) cannot be provided at the same time
        problems += [f"manifest.yaml: a model plugin cannot also declare plugins.{kind}"
                     for kind in OTHER_EXTENSIONS if plugins.get(kind)]
    elif plugins.get("tools"):
        if plugins.get("agent_strategies"):
            problems.append("manifest.yaml: a tool plugin cannot also declare plugins.agent_strategies")
    else:
        problems.append("manifest.yaml: plugins.models (a model provider) or plugins.tools (a tool provider) "
                        "must list the provider YAML")
    _tags(m.get("tags"), "manifest.yaml tags", problems)
    if "README.md" not in files:
        problems.append("README.md is missing (Dify shows it as the plugin's en_US readme)")
    return m


def _validate_forms(forms: Any, where: str, problems: list[str]) -> None:
    if not isinstance(forms, list):
        problems.append(f"{where}.credential_form_schemas must be a list")
        return
    for i, form in enumerate(forms):
        at = f"{where}.credential_form_schemas[{i}]"
        if not isinstance(form, dict) or not form.get("variable"):
            problems.append(f"{at} needs a variable")
            continue
        _en_us(form.get("label"), f"{at} ({form['variable']}) label", problems)
        if form.get("type") not in FORM_TYPES:
            problems.append(f"{at} ({form['variable']}) type must be one of {sorted(FORM_TYPES)}")
        if "default" in form and not isinstance(form["default"], str | None):
            problems.append(f"{at} ({form['variable']}) default must be a string: quote it")


def _tags(value: Any, where: str, problems: list[str]) -> None:
    if value is not None and (not isinstance(value, list) or not set(map(str, value)) <= PLUGIN_TAGS):
        problems.append(f"{where} must be a list of {sorted(PLUGIN_TAGS)}")


def _validate_tool_credentials(forms: Any, where: str, problems: list[str]) -> None:
    """credentials_for_provider: a mapping name -> config (or a list of configs with names), as the daemon reads it."""
    if isinstance(forms, dict):
        forms = [{**form, "name": name} if isinstance(form, dict) else form for name, form in forms.items()]
    if not isinstance(forms, list):
        problems.append(f"{where} must map each credential name to its form field")
        return
    for i, form in enumerate(forms):
        at = f"{where}[{form.get('name', i) if isinstance(form, dict) else i}]"
        if not isinstance(form, dict):
            problems.append(f"{at} must be a mapping")
            continue
        _en_us(form.get("label"), f"{at} label", problems)
        if form.get("type") not in TOOL_CREDENTIAL_TYPES:
            problems.append(f"{at} type must be one of {sorted(TOOL_CREDENTIAL_TYPES)}")
        if form.get("default") is not None and not isinstance(form["default"], str | int | float | bool):
            problems.append(f"{at} default must be a string, number or boolean")
        if form.get("type") == "select" and not form.get("options"):
            problems.append(f"{at} is a select without options")


def _validate_tool(files: Mapping[str, bytes], path: str, problems: list[str]) -> None:
    tool = _yaml(files, path, problems)
    if not tool:
        return
    _tool_identity(tool.get("identity") or {}, path, problems)
    description = tool.get("description") or {}
    _en_us(description.get("human"), f"{path} description.human", problems)
    _required(description, "llm", f"{path} description", problems)
    parameters = tool.get("parameters") or []
    if not isinstance(parameters, list):
        problems.append(f"{path}: parameters must be a list")
        parameters = []
    for i, parameter in enumerate(parameters):
        at = f"{path} parameters[{parameter.get('name', i) if isinstance(parameter, dict) else i}]"
        if not isinstance(parameter, dict) or not str(parameter.get("name") or "").strip():
            problems.append(f"{at} needs a name")
            continue
        _en_us(parameter.get("label"), f"{at} label", problems)
        _en_us(parameter.get("human_description"), f"{at} human_description", problems)
        if parameter.get("type") not in TOOL_PARAMETER_TYPES:
            problems.append(f"{at} type must be one of {sorted(TOOL_PARAMETER_TYPES)}")
        if parameter.get("form") not in TOOL_PARAMETER_FORMS:
            problems.append(f"{at} form must be one of {sorted(TOOL_PARAMETER_FORMS)}")
        if parameter.get("multiple") and parameter.get("type") not in ("select", "dynamic-select"):
            problems.append(f"{at}: multiple is only valid for select and dynamic-select parameters")
    if "output_schema" in tool and not isinstance(tool["output_schema"], dict):
        problems.append(f"{path}: output_schema must be a mapping (a JSON schema)")
    _source(files, path, ((tool.get("extra") or {}).get("python") or {}).get("source"), problems)


def _tool_identity(identity: Mapping[str, Any], path: str, problems: list[str]) -> None:
    """What a tool and a tool provider's identity both need: author, a plain name, an en_US label."""
    _required(identity, "author", f"{path} identity", problems)
    if not TOOL_NAME_RE.match(str(identity.get("name", ""))):
        problems.append(f"{path}: identity.name must match ^[a-zA-Z0-9_-]+$")
    _en_us(identity.get("label"), f"{path} identity.label", problems)


def _source(files: Mapping[str, bytes], path: str, source: Any, problems: list[str]) -> None:
    """A Python source named by a YAML: present, and not loaded as dify_plugin.* (which would shadow the SDK)."""
    if not source:
        problems.append(f"{path}: extra.python.source is required")
        return
    if source not in files:
        problems.append(f"{path}: source {source!r} is not in the package")
    if str(source).split("/")[0] == "dify_plugin":
        problems.append(f"{path}: source {source!r} would load as dify_plugin.* and shadow the SDK")


def _validate_tool_provider(files: Mapping[str, bytes], path: str, problems: list[str]) -> None:
    p = _yaml(files, path, problems)
    if not p:
        return
    identity = p.get("identity") or {}
    _tool_identity(identity, path, problems)
    _en_us(identity.get("description"), f"{path} identity.description", problems)  # the SDK requires it
    _required(identity, "icon", f"{path} identity", problems)
    _icon(identity.get("icon"), f"{path} identity.icon", files, problems)
    _icon(identity.get("icon_dark"), f"{path} identity.icon_dark", files, problems)
    _tags(identity.get("tags"), f"{path} identity.tags", problems)
    credentials = p.get("credentials_for_provider", p.get("credentials_schema"))
    if credentials is not None:
        _validate_tool_credentials(credentials, f"{path} credentials_for_provider", problems)
    tools = p.get("tools")
    if not isinstance(tools, list) or not tools or not all(isinstance(t, str) for t in tools):
        problems.append(f"{path}: tools must list the tool YAML files")
        tools = []
    for tool_path in tools:
        _validate_tool(files, tool_path, problems)
    _source(files, path, ((p.get("extra") or {}).get("python") or {}).get("source"), problems)


def _glob_matches(pattern: str, path: str) -> bool:
    """Go's filepath.Match: `*` never crosses a `/`."""
    pattern_parts, path_parts = pattern.split("/"), path.split("/")
    return len(pattern_parts) == len(path_parts) and all(
        fnmatch.fnmatchcase(p, q) for p, q in zip(path_parts, pattern_parts, strict=True))


def _validate_model(files: Mapping[str, bytes], path: str, supported: list[Any], problems: list[str]) -> None:
    model = _yaml(files, path, problems)
    if not model:
        return
    _required(model, "model", path, problems)
    _en_us(model.get("label"), f"{path} label", problems)
    if model.get("model_type") not in supported:
        problems.append(f"{path}: model_type {model.get('model_type')!r} is not in supported_model_types")
    properties = model.get("model_properties")
    if not isinstance(properties, dict):
        problems.append(f"{path}: model_properties must be a mapping")
    elif "context_size" in properties and (not isinstance(properties["context_size"], int)
                                           or properties["context_size"] <= 0):
        problems.append(f"{path}: model_properties.context_size must be a positive integer")


def _validate_provider(files: Mapping[str, bytes], path: str, problems: list[str]) -> None:
    p = _yaml(files, path, problems)
    if not p:
        return
    _required(p, "provider", path, problems)
    _en_us(p.get("label"), f"{path} label", problems)
    for field in ICON_FIELDS:
        _icon(p.get(field), f"{path} {field}", files, problems)
    supported = p.get("supported_model_types") or []
    if not supported or not set(supported) <= MODEL_TYPES:
        problems.append(f"{path}: supported_model_types must be a non-empty subset of {sorted(MODEL_TYPES)}")
    methods = p.get("configurate_methods") or []
    if not methods or not set(methods) <= CONFIGURATE_METHODS:
        problems.append(f"{path}: configurate_methods must be a non-empty subset of {sorted(CONFIGURATE_METHODS)}")
    if "provider_credential_schema" in p:
        _validate_forms((p["provider_credential_schema"] or {}).get("credential_form_schemas"),
                        f"{path} provider_credential_schema", problems)
    model_schema = p.get("model_credential_schema")
    if "customizable-model" in methods and not model_schema:
        problems.append(f"{path}: customizable-model needs a model_credential_schema")
    if model_schema:
        _en_us((model_schema.get("model") or {}).get("label"), f"{path} model_credential_schema.model label",
               problems)
        _validate_forms(model_schema.get("credential_form_schemas"), f"{path} model_credential_schema", problems)
    models = p.get("models", {})
    if not isinstance(models, dict):
        problems.append(f"{path}: models must be a mapping like {{rerank: {{predefined: [models/rerank/*.yaml]}}}}")
        models = {}
    for model_type, spec in models.items():
        if model_type not in MODEL_TYPE_KEYS:
            problems.append(f"{path}: models.{model_type} is not a model type key")
            continue
        for pattern in (spec or {}).get("predefined", []):
            matched = [f for f in files if _glob_matches(pattern, f) and not f.endswith("_position.yaml")]
            if not matched:
                problems.append(f"{path}: models.{model_type}.predefined {pattern!r} matches no file")
            for model_path in matched:
                _validate_model(files, model_path, supported, problems)
    python = (p.get("extra") or {}).get("python") or {}
    _required(python, "provider_source", f"{path} extra.python", problems)
    for source in filter(None, [python.get("provider_source"), *python.get("model_sources", [])]):
        _source(files, path, source, problems)


def _validate_imports(files: Mapping[str, bytes], problems: list[str]) -> None:
    requirements = set(wheels.requirement_pins(files.get("requirements.txt", b"").decode()))
    if not requirements:
        problems.append("requirements.txt is missing or empty (the daemon installs the plugin's venv from it)")
    provided = _installed_closure(frozenset(requirements))
    distributions = _distributions()
    local = {rel.split("/")[0].removesuffix(".py") for rel in files if rel.endswith(".py")}
    for rel in (r for r in files if r.endswith(".py")):
        module, is_package = module_name(rel)
        for name, must_be_module in set(imported_modules(files[rel], module, is_package)):
            top = name.split(".")[0]
            if top in FORBIDDEN_IMPORTS:
                problems.append(f"{rel} imports {name}: server-side code must stay out of the plugin")
            elif top == "dify_plugin" and rel.startswith(f"{CLIENT_PACKAGE}/"):
                problems.append(f"{rel} imports the dify_plugin SDK: the shared client must stay SDK-free")
            elif top == CLIENT_PACKAGE and must_be_module and not module_file_in(name, files):
                problems.append(f"{rel} imports {name}, which is not bundled")
            elif top in local or top in sys.stdlib_module_names or not top:
                continue
            elif wheels.normalise(top) not in provided and not {
                    wheels.normalise(d) for d in distributions.get(top, [])} & provided:
                problems.append(f"{rel} imports {top}, which requirements.txt does not install")


def validate(files: Mapping[str, bytes]) -> None:
    """Raise PackageError listing every problem Dify's daemon (or the plugin's runner) would hit."""
    problems: list[str] = []
    manifest = _validate_manifest(files, problems)
    plugins = manifest.get("plugins") or {}
    for provider_path in plugins.get("models") or []:
        _validate_provider(files, provider_path, problems)
    for provider_path in plugins.get("tools") or []:
        _validate_tool_provider(files, provider_path, problems)
    _validate_imports(files, problems)
    problems += wheels.offline_problems(files)
    if problems:
        raise PackageError(problems)


# ---------------------------------------------------------------- command

def build(output_dir: Path, root: Path = REPO_ROOT, max_size: int = MAX_UNCOMPRESSED_BYTES,
          offline: wheels.Offline | None = None, plugin: PluginSource = MODEL,
          sign_key: RSAPrivateKey | None = None) -> Package:
    """Assemble, validate and write `<output_dir>/<name>-<version>.difypkg`; re-read it to prove it.

    `offline` adds the wheels: `<name>-<version>-offline-<arch>[-<arch>].difypkg`; `sign_key` signs it
    (`….signed.difypkg`, as `dify signature sign` names it) and the signature is verified before it is kept.
    """
    files = plugin_root_files(root, plugin)
    validate(files)  # the sources first: no download for a plugin that cannot work
    manifest = yaml.safe_load(files["manifest.yaml"])
    stem = f"{manifest['name']}-{manifest['version']}"
    if offline:
        platforms = offline.platforms or wheels.manifest_platforms(manifest)
        files = wheels.offline_files(files, platforms, str(manifest["meta"]["runner"]["version"]), offline.cache,
                                     offline.progress)
        validate(files)
        stem += "-offline-" + "-".join(dict.fromkeys(p.dify_arch for p in platforms))
    data = zip_bytes(files, max_size)
    if sign_key is not None:
        data = dify_signature.sign(data, sign_key)
        stem += ".signed"
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / f"{stem}.difypkg"
    path.write_bytes(data)
    if sign_key is not None:
        dify_signature.verify(path, {"the signing key": sign_key.public_key()})
    return inspect(path, max_size)


def inspect(path: Path, max_size: int = MAX_UNCOMPRESSED_BYTES) -> Package:
    """Validate an existing .difypkg as the daemon would and return its identity."""
    files = read_package(path, max_size)
    validate(files)
    return Package(path=path, identity=identity(files), files=tuple(files),
                   uncompressed=sum(map(len, files.values())))


def _platform(tag: str) -> wheels.Platform:
    try:
        return wheels.Platform.parse(tag)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=Path, default=Path("dist"),
                        help="folder for <name>-<version>.difypkg (default: dist/)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model", dest="plugin", action="store_const", const=MODEL.name,
                       help="build only the model-provider plugin (default: both)")
    which.add_argument("--tool", dest="plugin", action="store_const", const=TOOL.name,
                       help="build only the workflow tool plugin (default: both)")
    parser.add_argument("--root", type=Path, default=REPO_ROOT,
                        help="the rerank-kit checkout holding the plugins' sources (default: this one)")
    parser.add_argument("--sign", type=Path, metavar="KEY.pem",
                        help="sign the packages with this RSA private key (from `rerank-kit dify-keygen`)")
    parser.add_argument("--check", type=Path, metavar="FILE",
                        help="validate an existing .difypkg instead of building one")
    parser.add_argument("--max-size", type=int, default=MAX_UNCOMPRESSED_BYTES,
                        help="size cap in bytes (Dify's PLUGIN_MAX_PACKAGE_SIZE, default 50 MiB)")
    parser.add_argument("--offline", action="store_true",
                        help="carry the requirements as wheels, for a Dify that reaches no package index")
    parser.add_argument("--platform", type=_platform, action="append", default=[], metavar="PLATFORM",
                        help="with --offline, repeatable: a wheel target like manylinux_2_28_x86_64 (default: "
                             f"manylinux_2_{wheels.DEFAULT_GLIBC_MINOR}_<machine> for each manifest meta.arch)")
    parser.add_argument("--wheel-cache", type=Path, default=wheels.default_cache(), metavar="DIR",
                        help="with --offline: where downloaded wheels are kept (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    if args.platform and not args.offline:
        print("error: --platform needs --offline", file=sys.stderr)
        return 2
    offline = (wheels.Offline(tuple(args.platform), args.wheel_cache, lambda line: print(line, file=sys.stderr))
               if args.offline else None)
    try:
        sign_key = dify_signature.load_private_key(args.sign) if args.sign else None
        packages = ([inspect(args.check, args.max_size)] if args.check else
                    [build(args.output, args.root, max_size=args.max_size, offline=offline, plugin=plugin,
                           sign_key=sign_key) for plugin in PLUGINS if args.plugin in (None, plugin.name)])
    except (PackageError, wheels.WheelError, dify_signature.SignatureError, OSError, zipfile.BadZipFile) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    mib = wheels.MIB
    for package in packages:
        size = package.path.stat().st_size
        print(f"{package.path.name}: {size} bytes ({size / mib:.1f} MiB), {package.uncompressed} bytes uncompressed; "
              f"limit {args.max_size} ({args.max_size / mib:.1f} MiB)" + (f"; signed with {args.sign}" if sign_key
                                                                           else ""), file=sys.stderr)
        print(package.path)
        print(package.identity)
    return 0
