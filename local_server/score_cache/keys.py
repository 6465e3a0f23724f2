"""Cache keys: hashes of everything that changes a document's raw logit, never its text.

A key is the served model's identity (its files, family, backend, precision, and the settings that change a
score) with the API-key partition, the request's scoring options, the query and the document, hashed. The
cache holds keys and logits: a hit reveals only that someone asked the same thing (docs/server.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from local_server.backends import LoadedModel
from local_server.model_files import fingerprint
from local_server.settings import PER_MODEL_SETTINGS, Settings
from rerank_kit import __version__

# Per-model settings that never change a score: when a model loads, how its batches are cut, and the asked-for
# backend and device (the resolved ones are part of the identity).
_NOT_SCORING = frozenset({"lazy_load", "idle_unload_s", "max_batch_tokens", "backend", "device", "fp16"})


def model_identity(loaded: LoadedModel, settings: Settings) -> bytes:
    """What one loaded model computes with: two models under one name from different files, int8 and fp32, or
    two max lengths never share an entry. Reads the model folder's file stamps (a loader thread's work)."""
    scoring = {name: getattr(settings, name) for name in PER_MODEL_SETTINGS if name not in _NOT_SCORING}
    facts = {"files": fingerprint(settings.model), "family": loaded.family.name, "backend": loaded.backend.name,
             "device": loaded.device, "dtype": loaded.dtype, "variant": loaded.variant, "settings": scoring,
             "query_max_length": settings.effective_query_max_length, "rerank-kit": __version__}
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).digest()


def partition(api_key: str | None) -> bytes:
    """Entries are kept per API key: one key's traffic never answers another's (nor reveals it by timing)."""
    return hashlib.sha256(b"rerank-kit partition\0" + api_key.encode()).digest() if api_key else b""


def document_keys(identity: bytes, partition: bytes, query: str, documents: Sequence[str],
                  options: Mapping[str, Any]) -> list[bytes]:
    """One 128-bit key per document; the options are those of `RerankEngine.encode` (truncation, windows,
    instruction). The prefix is hashed once and copied per document."""
    prefix = hashlib.blake2b(identity + partition, digest_size=16)
    prefix.update(json.dumps([sorted(options.items()), query], ensure_ascii=False).encode("utf-8", "surrogatepass"))
    keys = []
    for document in documents:
        digest = prefix.copy()
        digest.update(document.encode("utf-8", "surrogatepass"))
        keys.append(digest.digest())
    return keys
