"""Where a model's files are (one rule for every loader: a local folder as given, or a hub id's snapshot), and
what identifies them."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from pathlib import Path


def model_folder(model: str, *, allow_patterns: Sequence[str] | None = None, cached_only: bool = False) -> Path:
    """The folder holding `model`: a local folder itself, else the hub id's snapshot, fetched (only the files
    matching `allow_patterns`, when given) unless `cached_only` or RERANK_OFFLINE, which read the cache alone.
    huggingface_hub's errors (not found, offline and not cached) are OSErrors."""
    local = Path(model).expanduser()
    if local.is_dir():
        return local
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(model, allow_patterns=list(allow_patterns) if allow_patterns else None,
                                  local_files_only=cached_only))


def file_stamps(folder: Path, suffixes: Collection[str] | None = None) -> str:
    """`|name:size:mtime_ns` for each file in the folder (those with one of `suffixes`, when given), sorted: what
    changes when a file is replaced, read without reading the files (weights are gigabytes)."""
    return "".join(f"|{path.name}:{stat.st_size}:{stat.st_mtime_ns}" for path in sorted(folder.iterdir())
                   if path.is_file() and (suffixes is None or path.suffix in suffixes) and (stat := path.stat()))


def fingerprint(model: str) -> str:
    """A hex digest of the model's files (weights, config, tokenizer) and where they are: two models served
    under one name from different files differ, and so does one folder whose weights were replaced."""
    folder = model_folder(model, cached_only=True).resolve()
    return hashlib.sha256(f"{folder}{file_stamps(folder)}".encode()).hexdigest()
