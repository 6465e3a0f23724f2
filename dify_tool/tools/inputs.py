"""The Rerank tool's parameters as Dify passes them, read into plain values (no SDK here, so tests read it alone).

`documents` holds strings, or the Knowledge Retrieval node's `result` objects, whose `content` is reranked
and which are returned whole. How it arrives depends on how the node is wired. The array itself comes from
direct callers. A string parameter gets text: Dify's `cast_parameter_value` turns a selected array variable
into `str(value)` (Python's repr, not JSON), and a template renders an array of strings as JSON but an
array of objects as Python's repr (`core/variables/segments.py`). So text is read as JSON, else as a Python
literal (`ast.literal_eval`: literals only, never code). `top_n` and `score_threshold` arrive as numbers,
None, or 0 when the node leaves them unset.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rerank_kit.errors import InvalidInputError

TEXT_FIELDS = ("content", "text")  # Knowledge Retrieval's `result` items, then plain {"text": ...} objects
DOCUMENTS_HINT = ('pass an array of strings, or the Knowledge Retrieval node\'s result (objects with "content"), '
                  "or its JSON text")


@dataclass(frozen=True)
class Document:
    """One document: the text to score and the item to return (a string, or the whole object)."""

    text: str
    item: str | Mapping[str, Any]


def _document(position: int, item: Any) -> Document:
    if isinstance(item, str):
        return Document(item, item)
    if isinstance(item, Mapping):
        field = next((name for name in TEXT_FIELDS if name in item), None)
        if field is None:
            raise InvalidInputError(f"documents[{position}] has no {' or '.join(TEXT_FIELDS)} field "
                                    f"(its fields: {', '.join(map(str, item)) or 'none'})", hint=DOCUMENTS_HINT)
        if not isinstance(item[field], str):
            raise InvalidInputError(f"documents[{position}].{field} must be text, got {type(item[field]).__name__}",
                                    hint=DOCUMENTS_HINT)
        return Document(item[field], item)
    raise InvalidInputError(f"documents[{position}] must be a string or an object, got {type(item).__name__}",
                            hint=DOCUMENTS_HINT)


def _literal(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        json_error = f"{error.msg} at character {error.pos}"
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise InvalidInputError(f"documents is text but not an array in JSON or Python literal form ({json_error})",
                                hint=DOCUMENTS_HINT) from None


def parse_documents(value: Any) -> list[Document]:
    """The documents in their given (retrieval) order; InvalidInputError naming what is wrong and where."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        value = _literal(text)
    if value is None:
        return []
    if isinstance(value, Mapping) and isinstance(value.get("result"), list):
        value = value["result"]  # the Knowledge Retrieval node's whole output object
    if not isinstance(value, list):
        raise InvalidInputError(f"documents must be an array, got {type(value).__name__}", hint=DOCUMENTS_HINT)
    return [_document(position, item) for position, item in enumerate(value)]


def _number(name: str, value: Any) -> float | None:
    """A finite number, or None when unset (None, "", 0: what Dify sends for an empty field)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise InvalidInputError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise InvalidInputError(f"{name} must be a finite number, got {value!r}")
    return number or None


def top_n(value: Any) -> int | None:
    """How many to keep: None (all) when unset, 0 or negative; a fraction is refused rather than rounded."""
    number = _number("top_n", value)
    if number is None or number < 0:
        return None
    if not number.is_integer():
        raise InvalidInputError(f"top_n must be a whole number, got {value!r}")
    return int(number)


def score_threshold(value: Any) -> float | None:
    """The lowest score kept: None when unset or 0; scores are calibrated to [0, 1], so above 1 drops everything."""
    number = _number("score_threshold", value)
    if number is not None and not 0 <= number <= 1:
        raise InvalidInputError(f"score_threshold must be between 0 and 1, got {value!r}",
                                hint="scores are calibrated to [0, 1]: 0.5 means more likely relevant than not")
    return number
