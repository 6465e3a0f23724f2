"""Where a model's files are: one rule for every loader (a local folder as given, or a hub id's snapshot)."""

from __future__ import annotations

from collections.abc import Sequence
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
