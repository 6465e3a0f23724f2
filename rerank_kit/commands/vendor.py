"""The one vendoring rule: an integration gets exactly the `rerank_kit` modules its sources import.

The Dify packager bundles them into the .difypkg and the RAGFlow installer copies them beside its rerank
class, both through `vendored_core`, found by reading imports (never a fixed list), so splitting a module
can never break one integration silently.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath

CORE_PACKAGE = "rerank_kit"
# The folder that holds the rerank_kit package: the repository, or site-packages when installed.
REPO_ROOT = Path(__file__).resolve().parents[2]


def imported_modules(source: bytes, module: str, is_package: bool) -> Iterator[tuple[str, bool]]:
    """(name, must_be_module) for every import in `source` (anywhere in the file), relative ones resolved.

    `from a import b` yields ("a", True) and ("a.b", False): `b` may be a submodule or an attribute.
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ((alias.name, True) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, True
            yield from ((f"{base}.{alias.name}", False) for alias in node.names if alias.name != "*")


def _module_file(module: str, root: Path) -> str | None:
    """`a.b` -> `a/b.py` or `a/b/__init__.py` when it exists under root."""
    path = module.replace(".", "/")
    return next((p for p in (f"{path}.py", f"{path}/__init__.py") if (root / p).is_file()), None)


def module_name(rel_path: str) -> tuple[str, bool]:
    path = PurePosixPath(rel_path).with_suffix("")
    is_package = path.name == "__init__"
    return ".".join(path.parent.parts if is_package else path.parts), is_package


def vendored_core(sources: Mapping[str, bytes], root: Path = REPO_ROOT) -> dict[str, bytes]:
    """The `rerank_kit` files that `sources` (path -> bytes) import, transitively, read from `root`."""
    found: dict[str, bytes] = {}
    pending = [(rel, data) for rel, data in sources.items() if rel.endswith(".py")]
    while pending:
        rel, data = pending.pop()
        module, is_package = module_name(rel)
        for name, _ in imported_modules(data, module, is_package):
            if name.split(".")[0] != CORE_PACKAGE:
                continue
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):  # the module and every package above it
                path = _module_file(".".join(parts[:depth]), root)
                if path and path not in found:
                    found[path] = (root / path).read_bytes()
                    pending.append((path, found[path]))
    return found


def module_file_in(module: str, files: Mapping[str, bytes]) -> bool:
    """Whether `module` is one of `files` (a path -> bytes map), as a module or a package."""
    path = module.replace(".", "/")
    return f"{path}.py" in files or f"{path}/__init__.py" in files
