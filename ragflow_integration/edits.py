"""Idempotent text edits of RAGFlow files: the registration hook, the factory entry, the web constants.

Each `with_*` function returns the new text; applying it to its own output returns that output unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rerank_kit.protocol import ModelCard

FACTORY_ENTRY_FILE = Path(__file__).with_name("llm_factories.json")
HOOK_BEGIN = "# >>> rerank-kit: registers the rerank-kit rerank factory (`rerank-kit install-ragflow --uninstall`)"
HOOK_END = "# <<< rerank-kit"
# Appended after `class Base` so the class is built from RAGFlow's own Base, in this module's namespace.
HOOK_BODY = (
    "from rag.llm.rerank_kit_model import build_rerank_class as _build_rerank_kit_class  # noqa: E402\n"
    "\n"
    "RerankKitRerank = _build_rerank_kit_class(Base)\n"
)
HOOK_PATTERN = re.compile(rf"\n*{re.escape(HOOK_BEGIN)}\n.*?{re.escape(HOOK_END)}\n", re.DOTALL)

WEB_ENUM_MEMBER = "RerankKit"
# The icon file name is one RAGFlow already ships (web/src/assets/svg/llm/baai.svg): the models are BAAI's.
WEB_ICON = "baai"


class EditError(ValueError):
    """A RAGFlow file does not have the shape this installer knows how to edit."""


def factory_entry(served: Sequence[ModelCard] = ()) -> dict[str, Any]:
    """rerank-kit's entry of `factory_llm_infos` (conf/llm_factories.json, RAGFlow's schema), with the models a
    server serves (`served`, from its /v1/models) first, so each is a model to pick in RAGFlow.

    Read from the file rather than from `rerank_model`, so the installer never needs numpy.
    """
    (entry,) = json.loads(FACTORY_ENTRY_FILE.read_text(encoding="utf-8"))["factory_llm_infos"]
    known = {llm["llm_name"] for llm in entry["llm"]}
    added = [{"llm_name": card.id, "tags": f"RE-RANK,{card.max_input_length or 512}",
              "max_tokens": card.max_input_length or 512, "model_type": "rerank"}
             for card in served if card.id not in known]
    return {**entry, "llm": added + entry["llm"]}


def with_factory(llm_factories_json: str, entry: dict[str, Any]) -> str:
    """Add `entry` to `factory_llm_infos` (replacing an older entry of the same name, in place)."""
    try:
        document = json.loads(llm_factories_json)
        infos = document["factory_llm_infos"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise EditError(f"conf/llm_factories.json has no `factory_llm_infos` list ({exc})") from exc
    names = [info.get("name") for info in infos]
    if entry["name"] in names:
        infos[names.index(entry["name"])] = entry
    else:
        infos.append(entry)
    return json.dumps(document, indent=4, ensure_ascii=False) + "\n"


def with_hook(rerank_model_py: str) -> str:
    """Append (or refresh) the block that registers the class, at the end of rag/llm/rerank_model.py."""
    if not re.search(r"^class Base\(", rerank_model_py, re.MULTILINE):
        raise EditError("rag/llm/rerank_model.py defines no `class Base(`: is this a RAGFlow tree?")
    stripped = HOOK_PATTERN.sub("\n", rerank_model_py).rstrip("\n")
    return f"{stripped}\n\n\n{HOOK_BEGIN}\n{HOOK_BODY}{HOOK_END}\n"


def _insert_after(text: str, opener: str, line: str) -> str:
    """Insert `line` right after the line that is exactly `opener`, unless it is already there."""
    if line in text.splitlines():
        return text
    match = re.search(rf"^{re.escape(opener)}[ \t]*\n", text, re.MULTILINE)
    if not match:
        raise EditError(f"no line `{opener}` (a multi-line declaration) to add to")
    return text[: match.end()] + line + "\n" + text[match.end():]


def with_web_factory(llm_ts: str) -> str:
    """web/src/constants/llm.ts: the `LLMFactory` enum member and its `IconMap` entry."""
    member = f"  {WEB_ENUM_MEMBER} = '{factory_entry()['name']}',"
    text = _insert_after(llm_ts, "export enum LLMFactory {", member)
    return _insert_after(text, "export const IconMap = {", f"  [LLMFactory.{WEB_ENUM_MEMBER}]: '{WEB_ICON}',")


def with_local_factory(constants_tsx: str) -> str:
    """web/src/pages/user-setting/constants.tsx: list the factory in `LocalLlmFactories` (base-URL dialog)."""
    uses_enum = "LLMFactory." in constants_tsx
    member = f"LLMFactory.{WEB_ENUM_MEMBER}" if uses_enum else f"'{factory_entry()['name']}'"
    return _insert_after(constants_tsx, "export const LocalLlmFactories = [", f"  {member},")
