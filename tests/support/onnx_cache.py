"""An ONNX export cache's entries, and the damage a fault does to one (the cache must discard it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from local_server.backends.onnx_runtime.cache import MANIFEST


def entries(cache: Path) -> list[Path]:
    """The cache's entries (not its scratch folders, which start with a dot)."""
    return sorted(path for path in (cache / "onnx").iterdir() if path.is_dir() and not path.name.startswith("."))


def copy_of(pristine: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the pristine cache and its one entry."""
    cache = tmp_path / "cache"
    shutil.copytree(pristine, cache)
    (entry,) = entries(cache)
    return cache, entry


def truncate(entry: Path) -> None:
    graph = entry / "model.onnx"
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])  # as a full disk leaves it


def flip_a_byte(entry: Path) -> None:
    graph = entry / "model.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))


def drop_the_manifest(entry: Path) -> None:  # a copy interrupted before its last file, or an older layout
    (entry / MANIFEST).unlink()


def foreign(entry: Path) -> None:  # another export's entry under this name (a hand-copied cache)
    manifest = json.loads((entry / MANIFEST).read_text())
    (entry / MANIFEST).write_text(json.dumps({**manifest, "key": "bge-reranker-base-fp32-0123456789abcdef"}))
