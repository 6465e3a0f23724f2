"""Who answered and how to talk to it: server detection, wire formats, request bodies, response parsing.

Two separate questions, kept apart:
- `ServerKind`: which server answered, as its metadata routes (`/info`, `/v1/models`, `/models`) tell;
- `WireFormat`: how its rerank route is called (route, body family, answer shape). Many kinds share one
  format: rerank-kit, Infinity and OpenAI-compatible proxies all take `documents` at `POST /rerank`.

Apart from the transport policy because it changes when a new server family appears, not when failures do.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx

from rerank_kit.client.transport import is_html, json_body
from rerank_kit.errors import NotARerankerError
from rerank_kit.protocol import RerankRequest, RerankResponse, RerankResult, TEIRerankRequest, Usage


class ServerKind(StrEnum):
    """Which server answered, from its metadata routes; UNKNOWN when none answered."""

    RERANK_KIT = "rerank-kit"  # GET /info with "server": "rerank-kit"
    TEI = "tei"  # GET /info with TEI's fields and no rerank-kit marker
    OPENAI_COMPATIBLE = "openai-compatible"  # GET /v1/models: vLLM, Xinference, GPUStack, LocalAI, ...
    INFINITY = "infinity"  # GET /models
    UNKNOWN = "unknown"  # no metadata route: known only by the rerank route that answers

    @property
    def label(self) -> str:
        """For messages: `a tei server`, `an unknown server`."""
        return f"{'an' if self.value[0] in 'aeiou' else 'a'} {self.value} server"


class WireFormat(StrEnum):
    """How a rerank route is called: its path, its body family and the shape of its answer."""

    TEI = "tei"  # POST /rerank {query, texts}; answer: a bare list [{index, score}]
    DOCUMENTS = "documents"  # POST /rerank {query, documents}; answer: {results: [{index, relevance_score}]}
    V1_DOCUMENTS = "v1-documents"  # POST /v1/rerank {query, documents}: Cohere v1, Jina, vLLM, Xinference

    @property
    def path(self) -> str:
        return "/v1/rerank" if self is WireFormat.V1_DOCUMENTS else "/rerank"

    @property
    def description(self) -> str:
        """`POST /rerank with texts`: what the format sends, for reports."""
        return f"POST {self.path} with {'texts' if self is WireFormat.TEI else 'documents'}"

    @property
    def answer(self) -> str:
        return ("TEI's list of {index, score}" if self is WireFormat.TEI
                else "a Cohere-style {results: [{index, relevance_score}]}")


@dataclass(frozen=True)
class ServerProfile:
    """What detection learnt about a server. `wire` is a first guess until `confirmed` (by /info or a rerank)."""

    server: ServerKind = ServerKind.UNKNOWN
    wire: WireFormat | None = None
    confirmed: bool = False
    models: tuple[str, ...] = ()
    is_reranker: bool | None = None
    max_docs: int | None = None
    max_input_length: int | None = None

    def candidates(self, prefer_v1: bool) -> list[WireFormat]:
        """The formats a rerank tries in turn: the confirmed one alone; else the guess, then the others.

        TEI's `texts` format is not a candidate of its own: a server asking for `texts` in its 400/422 says so.
        """
        if self.confirmed and self.wire is not None:
            return [self.wire]
        first = self.wire or (WireFormat.V1_DOCUMENTS if prefer_v1 else WireFormat.DOCUMENTS)
        return list(dict.fromkeys([first, WireFormat.DOCUMENTS, WireFormat.V1_DOCUMENTS]))


def _profile_from_info(info: Any) -> ServerProfile | None:
    """TEI-style `/info` (TEI or rerank-kit): the format is known for sure."""
    if not isinstance(info, dict) or not info.get("model_id"):
        return None
    model_type = info.get("model_type")
    is_reranker = ("reranker" in model_type if isinstance(model_type, dict | str) else None)
    max_docs = info.get("max_docs") or info.get("max_client_batch_size")
    max_length = info.get("max_input_length")
    rerank_kit = str(info.get("server") or "").lower() == ServerKind.RERANK_KIT
    # rerank-kit lists every served model (the default, model_id, first); TEI serves one
    served = info.get("models") if isinstance(info.get("models"), list) and info.get("models") else [info["model_id"]]
    return ServerProfile(
        server=ServerKind.RERANK_KIT if rerank_kit else ServerKind.TEI,
        wire=WireFormat.DOCUMENTS if rerank_kit else WireFormat.TEI, confirmed=True,
        models=tuple(str(name) for name in served), is_reranker=is_reranker,
        max_docs=max_docs if isinstance(max_docs, int) and max_docs > 0 else None,
        max_input_length=max_length if isinstance(max_length, int) else None,
    )


def _declared_rerank(entry: dict[str, Any]) -> bool | None:
    """Whether a model-list entry says it reranks: Infinity's `capabilities`, Xinference's `model_type`."""
    capabilities = entry.get("capabilities")
    if isinstance(capabilities, list):
        return "rerank" in capabilities
    kind = entry.get("model_type") or entry.get("type")
    return kind.lower() == "rerank" if isinstance(kind, str) else None


def _profile_from_models(listing: Any, server: ServerKind, wire: WireFormat) -> ServerProfile | None:
    """An OpenAI-style `{"data": [{"id": ...}]}` list (vLLM, Xinference, GPUStack, Infinity): `wire` is a guess."""
    if not isinstance(listing, dict) or not isinstance(listing.get("data"), list):
        return None
    entries = [entry for entry in listing["data"] if isinstance(entry, dict) and entry.get("id")]
    if not entries:
        return None
    declared = [kind for kind in map(_declared_rerank, entries) if kind is not None]
    is_reranker = any(declared) if declared else None
    lengths = [entry.get("max_model_len") or entry.get("max_input_length") for entry in entries]
    max_length = lengths[0] if len(entries) == 1 and isinstance(lengths[0], int) else None
    return ServerProfile(server=server, wire=wire, models=tuple(str(entry["id"]) for entry in entries),
                         is_reranker=is_reranker, max_input_length=max_length)


# The metadata routes asked in turn until one describes the server, each with what its answer means.
DETECTION: tuple[tuple[str, Callable[[Any], ServerProfile | None]], ...] = (
    ("/info", _profile_from_info),
    ("/v1/models", functools.partial(_profile_from_models, server=ServerKind.OPENAI_COMPATIBLE,
                                     wire=WireFormat.V1_DOCUMENTS)),
    ("/models", functools.partial(_profile_from_models, server=ServerKind.INFINITY, wire=WireFormat.DOCUMENTS)),
)


def rerank_body(wire: WireFormat, query: str, documents: list[str], *, model: str | None,
                top_n: int | None) -> dict[str, Any]:
    """The JSON body of a rerank in `wire`'s format, from the shared wire models; only the fields set are sent."""
    request: TEIRerankRequest | RerankRequest
    if wire is WireFormat.TEI:
        request = TEIRerankRequest(query=query, texts=documents, truncate=True, raw_scores=False, return_text=False)
    else:
        request = RerankRequest(query=query, documents=documents, return_documents=False, model=model, top_n=top_n)
    return request.model_dump(mode="json", exclude_unset=True, exclude_none=True)


def _usage(data: dict[str, Any]) -> Usage:
    """Token counts from `usage` (Jina, Infinity, rerank-kit) or Xinference's `meta.tokens`."""
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    total = usage.get("total_tokens")
    prompt = usage.get("prompt_tokens", total)
    if not isinstance(total, int):
        meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
        tokens = meta.get("tokens") if isinstance(meta.get("tokens"), dict) else {}
        total = sum(v for v in (tokens.get("input_tokens"), tokens.get("output_tokens")) if isinstance(v, int))
        prompt = tokens.get("input_tokens", total)
    return Usage(prompt_tokens=prompt if isinstance(prompt, int) else 0, total_tokens=total)


def _not_a_rerank_response(response: httpx.Response, wire: WireFormat, server: ServerKind,
                           problem: str) -> NotARerankerError:
    got = "an HTML page" if is_html(response) else problem
    return NotARerankerError(f"the response is not a rerank response: {got}", url=str(response.request.url),
                             hint=f"expected {wire.answer} from {server.label}; is this URL a rerank server?",
                             status=response.status_code)


def parse_response(response: httpx.Response, wire: WireFormat, server: ServerKind, count: int) -> RerankResponse:
    """Either answer shape (TEI's bare list or `{results: [...]}`) for `count` documents into a RerankResponse."""
    data = json_body(response)
    if isinstance(data, list):
        items, score_key, usage, model, ident = data, "score", Usage(), "", ""
    elif isinstance(data, dict) and isinstance(data.get("results"), list):
        items, score_key = data["results"], "relevance_score"
        usage, model, ident = _usage(data), str(data.get("model") or ""), str(data.get("id") or "")
    else:
        raise _not_a_rerank_response(response, wire, server, "no result list in the body")
    results = []
    for item in items:
        index = item.get("index") if isinstance(item, dict) else None
        score = item.get(score_key, item.get("score")) if isinstance(item, dict) else None
        if not isinstance(index, int) or not 0 <= index < count:
            raise _not_a_rerank_response(response, wire, server, f"a result with an invalid index: {item!r:.80}")
        if not isinstance(score, int | float) or not math.isfinite(score):
            raise _not_a_rerank_response(response, wire, server, f"a result without a numeric score: {item!r:.80}")
        results.append(RerankResult(index=index, relevance_score=float(score)))
    return RerankResponse(id=ident, model=model, results=results, usage=usage)
