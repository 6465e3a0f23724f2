"""Write planned files with backups, and undo it all byte for byte.

`<root>/.rerank-kit-backup/` holds the original bytes of every file the installer changed and a manifest
of what it changed and created; `--uninstall` restores the one and deletes the other.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

BACKUP_DIR = ".rerank-kit-backup"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Change:
    rel: str
    old: str | None  # None: the file is created
    new: str


def pending_changes(root: Path, files: dict[str, str]) -> list[Change]:
    """The planned files whose current content differs (empty when already installed)."""
    changes = []
    for rel, new in files.items():
        path = root / rel
        old = path.read_bytes().decode("utf-8") if path.is_file() else None
        if old != new:
            changes.append(Change(rel, old, new))
    return changes


def apply(root: Path, changes: list[Change]) -> None:
    """Write each change, first backing up any file not yet backed up or created by an earlier run."""
    if not changes:
        return
    manifest = load_manifest(root) or {"modified": [], "created": [], "created_dirs": []}
    for change in changes:
        path = root / change.rel
        if change.old is None:
            manifest["created_dirs"] += _missing_dirs(root, path.parent)
            if change.rel not in manifest["created"]:
                manifest["created"].append(change.rel)
        elif change.rel not in manifest["modified"] + manifest["created"]:
            backup = root / BACKUP_DIR / "files" / change.rel
            backup.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, backup)
            manifest["modified"].append(change.rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(change.new.encode("utf-8"))
    (root / BACKUP_DIR).mkdir(exist_ok=True)
    (root / BACKUP_DIR / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def load_manifest(root: Path) -> dict[str, list[str]] | None:
    path = root / BACKUP_DIR / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def uninstall(root: Path, *, dry_run: bool = False) -> list[str]:
    """Restore backed-up files, delete created ones; returns one line per action."""
    manifest = load_manifest(root)
    if manifest is None:
        return []
    actions = [f"restore {rel}" for rel in manifest["modified"]] + [f"remove {rel}" for rel in manifest["created"]]
    if dry_run:
        return actions
    for rel in manifest["modified"]:
        shutil.copy2(root / BACKUP_DIR / "files" / rel, root / rel)
    for rel in manifest["created"]:
        path = root / rel
        path.unlink(missing_ok=True)
        for compiled in path.parent.glob(f"__pycache__/{path.stem}.*.pyc"):
            compiled.unlink()
    for rel in sorted(manifest["created_dirs"], key=lambda d: d.count("/"), reverse=True):
        directory = root / rel
        shutil.rmtree(directory / "__pycache__", ignore_errors=True)
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
    shutil.rmtree(root / BACKUP_DIR)
    return actions


def _missing_dirs(root: Path, directory: Path) -> list[str]:
    missing = []
    while directory != root and not directory.exists():
        missing.append(directory.relative_to(root).as_posix())
        directory = directory.parent
    return missing
