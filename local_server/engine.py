"""Tokenisation exactly as the model family's reference does it, and the padding of one batch for a backend.

FlagReranker.compute_score sorts, pads and runs a trial pass over its longest batch on every call (an
OOM probe), which doubles a small request's cost. The backend (local_server.backends) loads the model;
we tokenise and batch ourselves, and tests pin the scores to compute_score's.
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from local_server.backends import LoadedModel
from local_server.families import CrossEncoder
from local_server.score_cache.keys import model_identity
from local_server.settings import Settings

TruncationDirection = Literal["right", "left"]
# A token is rarely longer than this many characters; cutting huge documents before tokenising keeps
# a 1 MB document from costing a full tokenisation while leaving the kept tokens unchanged.
_MAX_CHARS_PER_TOKEN = 48


# Padded tokens per forward pass when RERANK_MAX_BATCH_TOKENS is unset. On a CPU, passes of ~2k tokens
# score 15-25% more pairs per second than batches of 32 x 200 tokens (activations stay in cache;
# measured for MiniLM-L6 and XLM-R-base shapes, docs/BENCHMARKS.md); accelerators want big batches.
CPU_BATCH_TOKENS = 2048
ACCELERATOR_BATCH_TOKENS = 16384


def batch_tokens_for(settings: Settings, device: str) -> int:
    """RERANK_MAX_BATCH_TOKENS, else the default for the device."""
    return settings.max_batch_tokens or (CPU_BATCH_TOKENS if device == "cpu" else ACCELERATOR_BATCH_TOKENS)


class InputTooLongError(ValueError):
    """A pair exceeds max_length and the request asked not to truncate."""


class TooMuchWorkError(ValueError):
    """A request would create more pairs than RERANK_MAX_PAIRS_PER_REQUEST (HTTP 413)."""


@dataclass(frozen=True, slots=True)
class EncodedPair:
    """One (query, document window) ready for the model; `doc` is the document's index in its request."""

    doc: int
    input_ids: list[int]
    token_type_ids: list[int] | None
    frame_lengths: tuple[int, int] = (0, 0)  # the template's tokens before and after the document window

    def __len__(self) -> int:
        return len(self.input_ids)


class RerankEngine:
    """Tokenises requests (from any number of threads) and scores padded batches (from one thread).

    A Hugging Face fast tokenizer is not thread-safe: every call reconfigures its truncation, and two
    threads in one tokenizer raise `RuntimeError: Already borrowed`. Each thread that encodes gets its
    own copy of the loaded tokenizer (as TEI gives each tokenisation worker its own), made on first use.
    """

    def __init__(self, model: LoadedModel, settings: Settings) -> None:
        tokenizer = self._prototype = model.tokenizer
        self._per_thread = threading.local()
        self._copying = threading.Lock()
        self.backend = model.backend
        self.device = model.device
        self.dtype = model.dtype
        self.note = model.note
        self.identity = model_identity(model, settings)  # what the score cache keys this model's entries by
        self.max_length = settings.max_length
        self.batch_tokens = batch_tokens_for(settings, model.device)
        self.max_pairs = settings.effective_max_pairs_per_request
        self.family = model.family
        self._pad_id = tokenizer.pad_token_id or 0
        self._with_token_types = isinstance(self.family, CrossEncoder) and self.family.token_types

    @property
    def tokenizer(self):
        """This thread's own tokenizer."""
        tokenizer = getattr(self._per_thread, "tokenizer", None)
        if tokenizer is None:
            with self._copying:  # the prototype is only ever read, one copy at a time
                tokenizer = self._per_thread.tokenizer = copy.deepcopy(self._prototype)
        return tokenizer

    # -- tokenisation ------------------------------------------------------------------------------

    def encode(
        self,
        query: str,
        documents: Sequence[str],
        *,
        truncate: bool = True,
        direction: TruncationDirection = "right",
        max_tokens_per_doc: int | None = None,
        max_chunks_per_doc: int = 1,
        instruction: str | None = None,
    ) -> list[EncodedPair]:
        """Pairs for every document (several windows per document when max_chunks_per_doc > 1), in the
        model family's template; `instruction` replaces the model's default for families that take one.

        The right-truncated single-window path is the family reference's tokenisation exactly.
        """
        self.check_pairs(len(documents), max_chunks_per_doc)  # refuse before any tokenising
        tok = self.tokenizer
        frame = self.family.frame(self._tokenize, query, instruction)
        budget = max(1, frame.room)
        doc_budget = min(budget, max_tokens_per_doc or budget)
        whole = direction == "left" or max_chunks_per_doc > 1 or not truncate
        needed = budget * max_chunks_per_doc + 1 if whole else self.max_length
        texts = [self.family.document_text(d) for d in documents]
        doc_ids = self._token_ids(texts, needed, from_end=direction == "left", exact=whole)
        owners: list[int] = []
        windows: list[list[int]] = []
        for doc, ids in enumerate(doc_ids):
            if not truncate and len(ids) > budget:
                raise InputTooLongError(
                    f"document {doc} has {frame.fixed + len(ids)} tokens with the query; "
                    f"the maximum is {self.max_length} (send truncate=true to cut it)"
                )
            for window in document_windows(ids, doc_budget, max_chunks_per_doc, direction):
                owners.append(doc)
                windows.append(window)
        joined = self.family.join_all(tok, frame, windows)
        lengths = (len(frame.before), len(frame.after))
        return [EncodedPair(doc, ids, types, lengths) for doc, (ids, types) in zip(owners, joined, strict=True)]

    def check_pairs(self, documents: int, max_chunks_per_doc: int) -> None:
        """TooMuchWorkError when so many documents, each in up to so many windows, could exceed max_pairs."""
        if documents * max_chunks_per_doc > self.max_pairs:
            raise TooMuchWorkError(self._too_much(documents * max_chunks_per_doc))

    def _tokenize(self, text: str, max_tokens: int | None) -> list[int]:
        """The first `max_tokens` token ids of `text` (all of them for None), without special tokens."""
        if max_tokens is None:
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self._token_ids([text], max_tokens, from_end=False, exact=False)[0]

    def _too_much(self, pairs: int) -> str:
        return (f"this request would score {pairs} (query, document window) pairs; the limit is {self.max_pairs} "
                "(RERANK_MAX_PAIRS_PER_REQUEST, at most RERANK_MAX_QUEUE_PAIRS): send fewer documents or fewer "
                "windows per document")

    def _token_ids(self, originals: Sequence[str], needed: int, *, from_end: bool, exact: bool) -> list[list[int]]:
        """Token ids per text, at least `needed` of them where the text has that many (exactly `needed` at
        most unless `exact`), without tokenising all of a huge text: each is cut by characters first."""
        cap = needed * _MAX_CHARS_PER_TOKEN
        texts = [t[-cap:] if from_end else t[:cap] for t in originals]
        kwargs = {"add_special_tokens": False}
        if not exact:
            kwargs |= {"max_length": needed, "truncation": True}
        tokenizer = self.tokenizer
        ids = tokenizer(texts, **kwargs)["input_ids"]
        for i, (text, original) in enumerate(zip(texts, originals, strict=True)):
            if len(text) < len(original) and len(ids[i]) < needed:  # the cap cut too much: redo exactly
                ids[i] = tokenizer(original, **kwargs)["input_ids"]
        return ids

    # -- scoring -----------------------------------------------------------------------------------

    def logits(self, pairs: Sequence[EncodedPair]) -> np.ndarray:
        """Raw logits of one batch, padded to its longest pair."""
        width = max(len(p) for p in pairs)
        ids = np.full((len(pairs), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(pairs), width), dtype=np.int64)
        types = np.zeros((len(pairs), width), dtype=np.int64) if self._with_token_types else None
        for row, pair in enumerate(pairs):
            n = len(pair)
            ids[row, :n] = pair.input_ids
            mask[row, :n] = 1
            if types is not None and pair.token_type_ids is not None:
                types[row, :n] = pair.token_type_ids
        batch = {"input_ids": ids, "attention_mask": mask}
        if types is not None:
            batch["token_type_ids"] = types
        for name in self.backend.extra_inputs:
            batch[name] = EXTRA_INPUTS[name](pairs)
        return self.backend.logits(batch)


# What a backend may ask for beyond the padded ids, mask and token types (Backend.extra_inputs), by the names of
# FlagEmbedding's lightweight reranker: where each pair's query and its prompt end.
EXTRA_INPUTS: dict[str, Callable[[Sequence[EncodedPair]], np.ndarray]] = {
    "query_lengths": lambda pairs: np.array([p.frame_lengths[0] for p in pairs], dtype=np.int64),
    "prompt_lengths": lambda pairs: np.array([p.frame_lengths[1] for p in pairs], dtype=np.int64),
}


def document_windows(ids: list[int], size: int, max_chunks: int, direction: TruncationDirection) -> list[list[int]]:
    """One window (truncated per `direction`), or up to max_chunks windows overlapping by a quarter."""
    if len(ids) <= size:
        return [ids]
    if max_chunks <= 1:
        return [ids[-size:]] if direction == "left" else [ids[:size]]
    stride = max(1, size - size // 4)
    count = min(max_chunks, 1 + math.ceil((len(ids) - size) / stride))
    return [ids[i * stride:i * stride + size] for i in range(count)]
