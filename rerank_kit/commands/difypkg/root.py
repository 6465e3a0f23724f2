"""The two plugins and their roots: which files of the checkout become each package, core modules included."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rerank_kit.commands.difypkg.errors import PackageError
from rerank_kit.commands.difypkg.ignore import ignore_patterns, is_ignored
from rerank_kit.commands.vendor import CORE_PACKAGE as CLIENT_PACKAGE
from rerank_kit.commands.vendor import REPO_ROOT, vendored_core


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
