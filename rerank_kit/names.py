"""Which served model a requested name means: one rule for the server's routing, the client's checks and
the RAGFlow class, so that a name one of them accepts is never refused by another."""

from __future__ import annotations

import re
from collections.abc import Iterable

# RAGFlow v0.25 appends `___<Factory>` to the model names of locally deployed factories.
PLATFORM_SUFFIX = "___"


def without_platform_suffix(name: str) -> str:
    """`bge-reranker-v2-m3___OpenAI-API` -> `bge-reranker-v2-m3`."""
    return name.split(PLATFORM_SUFFIX)[0]


def _last_part(name: str) -> str:
    return re.split(r"[/\\]", name.strip().rstrip("/\\").lower())[-1]


def same_model(requested: str, served: str) -> bool:
    """Equal ids, or equal last path parts (a hub id against a local folder), case-insensitively, with the
    platform suffix ignored: `BAAI/bge-reranker-v2-m3___VLLM` is the model served as `bge-reranker-v2-m3`."""
    requested = without_platform_suffix(requested)
    return requested.strip().lower() == served.strip().lower() or _last_part(requested) == _last_part(served)


def pick(requested: str, served: Iterable[tuple[str, Iterable[str]]]) -> str | None:
    """The served model `requested` means, from (name, aliases) pairs: an exact name or alias first, else the
    one model that `same_model` matches; None when none or several do."""
    candidates = [(name, [name, *aliases]) for name, aliases in served]
    exact = without_platform_suffix(requested)
    for name, names in candidates:
        if exact in names:
            return name
    loose = {name for name, names in candidates if any(same_model(requested, n) for n in names)}
    return loose.pop() if len(loose) == 1 else None
