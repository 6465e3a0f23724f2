"""A RAG-shaped workload of real English text: 1 query x N passages of ~180 tokens, from Python's
standard-library docstrings (present on every machine, deterministic for one Python version).

Passage lengths vary around the target (140..220 tokens of the MiniLM WordPiece tokenizer), as
retrieved chunks do, so length sorting and padding matter as they do in production.
"""

from __future__ import annotations

import importlib
import inspect
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

_MODULES = (
    "argparse", "asyncio", "collections", "concurrent.futures", "contextlib", "csv", "dataclasses",
    "datetime", "decimal", "difflib", "email", "enum", "fractions", "functools", "heapq", "http.client",
    "http.server", "inspect", "ipaddress", "itertools", "json", "logging", "mailbox", "multiprocessing",
    "os", "pathlib", "pickle", "pprint", "queue", "random", "re", "shutil", "smtplib", "socket",
    "sqlite3", "statistics", "string", "subprocess", "tarfile", "tempfile", "textwrap", "threading",
    "unittest", "urllib.parse", "urllib.request", "uuid", "xml.dom.minidom", "zipfile",
)
_MIN_TOKENS, _MAX_TOKENS = 140, 220


@dataclass(frozen=True)
class Request:
    query: str
    documents: list[str]

    @property
    def pairs(self) -> int:
        return len(self.documents)


def docstrings() -> Iterator[str]:
    """Docstrings of the listed stdlib modules and their public members, whitespace-normalised."""
    seen: set[str] = set()
    for name in _MODULES:
        module = importlib.import_module(name)
        members = [module] + [obj for attr, obj in sorted(vars(module).items()) if not attr.startswith("_")]
        for obj in members:
            for item in [obj, *_methods(obj)]:
                doc = inspect.getdoc(item) if callable(item) or inspect.ismodule(item) else None
                text = re.sub(r"\s+", " ", doc or "").strip()
                if len(text) > 80 and text not in seen:
                    seen.add(text)
                    yield text


def _methods(obj: object) -> list[object]:
    if not inspect.isclass(obj):
        return []
    return [v for k, v in sorted(vars(obj).items()) if not k.startswith("_") and callable(v)]


def make_passages(tokenizer, count: int, *, seed: int = 0,
                  tokens: tuple[int, int] = (_MIN_TOKENS, _MAX_TOKENS)) -> list[str]:
    """`count` passages cut from the docstring stream at word boundaries, `tokens` (140..220) tokens each."""
    rng = random.Random(seed)
    stream = " ".join(docstrings())
    passages: list[str] = []
    start = 0
    while len(passages) < count:
        target = rng.randint(*tokens)
        window = stream[start:start + target * 12]  # a token is far shorter than 12 characters
        encoded = tokenizer(window, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        offsets = encoded["offset_mapping"]
        if len(offsets) <= target:  # the stream ran out: start again, offset so passages differ
            start = rng.randrange(500)
            continue
        cut = window.rfind(" ", 0, offsets[target][0] + 1)  # the word boundary before token `target`
        passages.append(window[:cut].strip())
        start += cut + 1
    return passages


def make_queries(count: int, *, seed: int = 1) -> list[str]:
    """Question-shaped queries from the docstrings' first sentences (8..20 words)."""
    rng = random.Random(seed)
    sentences = [s for d in docstrings() if 8 <= len((s := d.split(". ")[0]).split()) <= 20]
    return [f"How do I {s[0].lower()}{s[1:].rstrip('.')}?" for s in rng.sample(sentences, count)]


def make_requests(passages: list[str], queries: list[str], docs_per_request: int, count: int) -> list[Request]:
    """`count` requests of one query and `docs_per_request` passages, rotating through both pools."""
    requests = []
    for i in range(count):
        offset = (i * docs_per_request) % len(passages)
        docs = (passages[offset:] + passages[:offset])[:docs_per_request]
        requests.append(Request(queries[i % len(queries)], docs))
    return requests
