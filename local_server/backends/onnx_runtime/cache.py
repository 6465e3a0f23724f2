"""The export cache: one folder per export under `RERANK_CACHE_DIR/onnx`, safe on a volume that several
processes (replicas, recreated containers) share.

An entry is built in a scratch folder (`.export-<key>-*`) and renamed into place only when complete, with a
manifest holding its key and every file's size and SHA-256. Before an entry is used its manifest and
checksums are checked: a damaged (truncated, edited), partial (no manifest) or foreign (another key's)
entry is discarded with one log line and built again, never served and never a crash. One process builds
a key at a time (an advisory file lock beside the entries, released by the kernel if the process dies), so
two replicas starting on one volume end with one entry; a scratch folder is never read, and one left by a
killed build is removed by the next build of its key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: one process per cache folder (the in-process lock still holds)
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_FORMAT = 1
_SCRATCH_PREFIX = ".export-"
_IN_PROCESS = threading.Lock()  # flock conflicts between open files, but one process's threads share this too
_CHUNK = 1 << 24


@dataclass(frozen=True)
class Entry:
    """A checked entry: its graph, or the reason its export was rejected (a cached verdict)."""

    folder: Path
    rejected: str | None = None

    @property
    def graph(self) -> Path:
        return self.folder / "model.onnx"


class ExportCache:
    """The entries under `cache_dir/onnx`, each named by its key."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = Path(cache_dir) / "onnx"

    def folder(self, key: str) -> Path:
        return self.root / key

    def open(self, key: str, *, repair: bool = False) -> Entry | None:
        """The entry of `key` when it is whole; None when there is none or it is broken. With `repair` (only
        while `building(key)`, so that no other process is publishing it) a broken one is also discarded,
        with one warning line, for the caller to build again."""
        folder = self.folder(key)
        if not folder.exists():
            return None
        problem = _problem(folder, key)
        if problem is None:
            return Entry(folder, json.loads((folder / MANIFEST).read_text()).get("rejected"))
        if repair:
            self.discard(key, problem)
        return None

    def discard(self, key: str, why: str) -> None:
        """Remove `key`'s entry (only while `building(key)`)."""
        log.warning("discarding the ONNX cache entry %s (%s); it is built again", self.folder(key), why)
        _remove(self.folder(key))

    @contextlib.contextmanager
    def building(self, key: str) -> Iterator[None]:
        """Held while `key` is checked and built: one builder per key across threads and processes. Scratch
        folders of this key found here belong to a build that died (a live one would hold the lock)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with _IN_PROCESS, (self.root / f".{key}.lock").open("a") as handle:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX)
            for stale in self.root.glob(f"{_SCRATCH_PREFIX}{key}-*"):
                log.info("removing %s, left by an export that did not finish", stale)
                _remove(stale)
            yield

    def scratch(self, key: str) -> Path:
        """A new scratch folder for building `key` (on the same file system, so the rename is atomic)."""
        self.root.mkdir(parents=True, exist_ok=True)
        folder = self.root / f"{_SCRATCH_PREFIX}{key}-{os.getpid()}-{time.monotonic_ns()}"
        folder.mkdir()
        return folder

    def publish(self, scratch: Path, key: str, *, rejected: str | None = None) -> Entry:
        """Seal `scratch` (its manifest: key, files, checksums) and rename it into place as `key`'s entry."""
        files = {path.name: {"bytes": path.stat().st_size, "sha256": _sha256(path)}
                 for path in sorted(scratch.iterdir()) if path.is_file()}
        manifest = {"format": _FORMAT, "key": key, "files": files, "rejected": rejected}
        (scratch / MANIFEST).write_text(json.dumps(manifest, indent=1))
        target = self.folder(key)
        try:
            os.replace(scratch, target)
        except OSError:  # a whole entry is there already (built by a process that held no lock): keep it
            _remove(scratch)
            if _problem(target, key) is not None:
                raise
        return Entry(target, rejected)


def _problem(folder: Path, key: str) -> str | None:
    """Why `folder` is not a whole entry of `key`, or None when it is."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return "no manifest: a partial or foreign entry"
    except (OSError, ValueError) as exc:
        return f"unreadable manifest ({type(exc).__name__})"
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT or manifest.get("key") != key:
        return "a foreign entry (its manifest names another export)"
    files = manifest.get("files")
    if not isinstance(files, dict):
        return "a manifest without its file list"
    present = {path.name for path in folder.iterdir() if path.is_file()} - {MANIFEST}
    if present != set(files):
        return f"files {sorted(present ^ set(files))} differ from its manifest"
    if manifest.get("rejected") is None and "model.onnx" not in files:
        return "no model.onnx"
    for name, expected in files.items():
        path = folder / name
        if path.stat().st_size != expected.get("bytes"):
            return f"{name} has {path.stat().st_size} bytes, its manifest says {expected.get('bytes')}"
        if _sha256(path) != expected.get("sha256"):
            return f"{name} does not match its checksum"
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _remove(folder: Path) -> None:
    """Remove a folder; one that cannot be removed (a read-only volume) is left, and then never used."""
    shutil.rmtree(folder, ignore_errors=True)
