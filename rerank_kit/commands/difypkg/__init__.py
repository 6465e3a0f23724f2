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

One job per module: `ignore` (.difyignore), `root` (the two plugins and the files of each root),
`archive` (the zip written and read, the identity), `checks` (the validation), `build` (build and
inspect a package), `cli` (the command); `errors` holds PackageError. This package names what callers use.
"""

from __future__ import annotations

from rerank_kit.commands.difypkg.archive import (
    MAX_UNCOMPRESSED_BYTES,
    ZIP_DATE,
    checksum,
    identity,
    read_package,
    zip_bytes,
)
from rerank_kit.commands.difypkg.build import Package, build, inspect
from rerank_kit.commands.difypkg.checks import validate
from rerank_kit.commands.difypkg.cli import add_arguments, run
from rerank_kit.commands.difypkg.errors import PackageError
from rerank_kit.commands.difypkg.ignore import IgnorePattern, ignore_patterns, is_ignored
from rerank_kit.commands.difypkg.root import MODEL, PLUGINS, TOOL, PluginSource, plugin_root_files

__all__ = [
    "MAX_UNCOMPRESSED_BYTES",
    "MODEL",
    "PLUGINS",
    "TOOL",
    "ZIP_DATE",
    "IgnorePattern",
    "Package",
    "PackageError",
    "PluginSource",
    "add_arguments",
    "build",
    "checksum",
    "identity",
    "ignore_patterns",
    "inspect",
    "is_ignored",
    "plugin_root_files",
    "read_package",
    "run",
    "validate",
    "zip_bytes",
]
