"""The client's flows: detection, rerank (with batching) and check, as generators that yield steps.

Each flow yields what to do next (a `Call` or a `Sleep`) and receives its outcome, so one implementation
serves both drivers (`drivers.py`); the decisions themselves come from `servers.py` (what to send, how to
read it) and `transport.py` (when to retry, what an error is).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from rerank_kit import __version__
from rerank_kit.client.servers import (
    DETECTION,
    ServerKind,
    ServerProfile,
    WireFormat,
    parse_response,
    rerank_body,
)
from rerank_kit.client.transport import Call, Flow, TransportPolicy, is_html, json_body
from rerank_kit.client.urls import normalize_base_url, prefers_v1
from rerank_kit.errors import InvalidInputError, ModelNotServedError, NotARerankerError, RerankError
from rerank_kit.names import same_model
from rerank_kit.protocol import RerankResponse, RerankResult, ResultDocument, Usage

PROBE_QUERY = "What is the capital of France?"
PROBE_DOCUMENT = "Paris is the capital and largest city of France."


@dataclass
class CheckReport:
    """Credential/endpoint validation result; `check()` fills it and never raises for server problems.

    `server` is who answered (None when nothing did); `wire` is how it was called, once a rerank worked.
    """

    url: str
    ok: bool = False
    error: RerankError | None = None
    server: ServerKind | None = None
    wire: WireFormat | None = None
    model: str | None = None
    served_models: list[str] = field(default_factory=list)
    is_reranker: bool | None = None
    max_docs: int | None = None
    max_input_length: int | None = None
    probe_score: float | None = None
    probe_tokens: int | None = None
    latency_ms: float | None = None

    @property
    def message(self) -> str:
        """One human line; on failure the error's message, URL and hint."""
        if self.error is not None:
            return str(self.error)
        limits = ", ".join(part for part in (
            f"max {self.max_docs} documents per request" if self.max_docs else "",
            f"max {self.max_input_length} tokens" if self.max_input_length else "",
        ) if part)
        return (f"OK: {self.server} server at {self.url} serves {self.model or 'an unnamed model'}"
                + (f" ({limits})" if limits else ""))


class ClientCore:
    """Settings, detected state and every flow; the drivers only run the steps the flows yield."""

    def __init__(self, base_url: str, api_key: str | None = None, model: str | None = None, *,
                 timeout: float = 60.0, connect_timeout: float = 5.0, max_retries: int = 2,
                 backoff: float = 0.5, max_backoff: float = 8.0, max_retry_wait: float = 60.0,
                 batch_size: int | None = None, clock: Callable[[], float] = time.time,
                 jitter: Callable[[], float] = random.random) -> None:
        self.base_url = normalize_base_url(base_url)
        self.model = model.strip() if model and model.strip() else None
        self.batch_size = batch_size if batch_size and batch_size > 0 else None
        self._headers = {"Accept": "application/json", "User-Agent": f"rerank-kit/{__version__}"}
        if api_key and api_key.strip():
            self._headers["Authorization"] = f"Bearer {api_key.strip()}"
        self.policy = TransportPolicy(
            self.base_url, timeout=timeout, connect_timeout=connect_timeout, max_retries=max(0, max_retries),
            backoff=backoff, max_backoff=max_backoff, max_retry_wait=max_retry_wait,
            has_key="Authorization" in self._headers, clock=clock, jitter=jitter)
        self._prefer_v1 = prefers_v1(base_url)
        self._profile: ServerProfile | None = None

    @property
    def profile(self) -> ServerProfile | None:
        """What detection found so far (None before the first call)."""
        return self._profile

    def _http_options(self) -> dict[str, Any]:
        """httpx client settings shared by both drivers: base URL, headers, separate connect timeout."""
        return {"base_url": self.base_url, "headers": self._headers, "timeout": self.policy.http_timeout}

    # -- detection -----------------------------------------------------------------------------------

    def _probe(self, path: str) -> Flow[Any]:
        """GET a metadata route; its JSON, or None when the route is missing or not JSON."""
        response = yield from self.policy.send(Call("GET", path), retry_statuses=False)
        if response.status_code in (401, 403):
            raise self.policy.status_error(response)
        return json_body(response) if response.status_code == 200 and not is_html(response) else None

    def _profile_flow(self) -> Flow[ServerProfile]:
        """Detect the server once from its metadata routes; when none answers, the first rerank will tell."""
        if self._profile is None:
            profile = None
            for path, read in DETECTION:
                profile = read((yield from self._probe(path)))
                if profile is not None:
                    break
            self._profile = profile or ServerProfile()
        return self._profile

    # -- rerank --------------------------------------------------------------------------------------

    def _rerank_call(self, wire: WireFormat, query: str, documents: list[str], top_n: int | None) -> Call:
        """The request; without a configured model, a server listing exactly one gets that one (vLLM wants it)."""
        profile = self._profile or ServerProfile()
        model = self.model or (profile.models[0] if len(profile.models) == 1 else None)
        return Call("POST", wire.path, rerank_body(wire, query, documents, model=model, top_n=top_n))

    def _batch_flow(self, query: str, documents: list[str], top_n: int | None) -> Flow[RerankResponse]:
        """One request; on an unconfirmed format, try the routes in turn and remember the one that answers."""
        profile = self._profile or ServerProfile()
        response: httpx.Response | None = None
        for wire in profile.candidates(self._prefer_v1):
            response = yield from self.policy.send(self._rerank_call(wire, query, documents, top_n))
            if (response.status_code in (400, 422) and wire is not WireFormat.TEI
                    and not profile.confirmed and "texts" in response.text):
                wire = WireFormat.TEI
                response = yield from self.policy.send(self._rerank_call(wire, query, documents, top_n))
            if response.status_code in (404, 405) and not profile.confirmed:
                continue
            if response.is_success:
                self._profile = replace(profile, wire=wire, confirmed=True)
            break
        assert response is not None
        if not response.is_success:
            raise self.policy.status_error(response)
        return parse_response(response, wire, profile.server, len(documents))

    def _rerank_flow(self, query: str, documents: Sequence[str], top_n: int | None) -> Flow[RerankResponse]:
        docs = list(documents)
        if not all(isinstance(doc, str) for doc in docs):
            raise InvalidInputError("every document must be a string", hint="pass the documents' text, not objects")
        if not docs:
            return RerankResponse(model=self.model or "", results=[])
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("the query is empty", hint="pass the user's question as the query")
        profile = yield from self._profile_flow()
        if profile.is_reranker is False:
            raise NotARerankerError(f"the server at {self.base_url} serves a model that is not a reranker",
                                    url=self.base_url,
                                    hint="serve a cross-encoder reranker model there (e.g. BAAI/bge-reranker-base)")
        limit = top_n if top_n and top_n > 0 else None
        size = self.batch_size or profile.max_docs or len(docs)
        merged: list[RerankResult] = []
        parts: list[RerankResponse] = []
        for start in range(0, len(docs), size):
            part = yield from self._batch_flow(query, docs[start:start + size], limit if size >= len(docs) else None)
            parts.append(part)
            merged += [RerankResult(index=start + r.index, relevance_score=r.relevance_score,
                                    document=ResultDocument(text=docs[start + r.index])) for r in part.results]
        merged.sort(key=lambda result: -result.relevance_score)
        served = self._profile.models if self._profile else ()
        return RerankResponse(
            id=parts[0].id, model=parts[0].model or (served[0] if served else self.model or ""),
            results=merged[:limit] if limit else merged,
            usage=Usage(prompt_tokens=sum(p.usage.prompt_tokens for p in parts),
                        total_tokens=sum(p.usage.total_tokens for p in parts)),
        )

    # -- check ---------------------------------------------------------------------------------------

    def _model_length(self, model: str) -> Flow[int | None]:
        """`max_input_length` of `model` in the server's /v1/models list (None when it does not say)."""
        listing = yield from self._probe("/v1/models")
        entries = listing.get("data") if isinstance(listing, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            length = entry.get("max_input_length") if isinstance(entry, dict) else None
            if isinstance(length, int) and same_model(model, str(entry.get("id", ""))):
                return length
        return None

    def _check_flow(self) -> Flow[CheckReport]:
        report = CheckReport(url=self.base_url)
        try:
            profile = yield from self._profile_flow()
            report.served_models = list(profile.models)
            report.is_reranker, report.max_docs = profile.is_reranker, profile.max_docs
            report.max_input_length = profile.max_input_length
            if self.model and len(profile.models) > 1:  # a multi-model server: this model's own length
                report.max_input_length = (yield from self._model_length(self.model)) or report.max_input_length
            if self.model and profile.models and not any(same_model(self.model, m) for m in profile.models):
                raise ModelNotServedError(
                    f"model {self.model} is not served; the server serves {', '.join(profile.models)}",
                    url=self.base_url, hint=f"set the model name to {profile.models[0]}" if len(profile.models) == 1
                    else f"set the model name to one of {', '.join(profile.models)}")
            started = time.perf_counter()
            response = yield from self._rerank_flow(PROBE_QUERY, [PROBE_DOCUMENT], None)
            report.latency_ms = (time.perf_counter() - started) * 1000
            if len(response.results) != 1:
                raise NotARerankerError(
                    f"the probe rerank of one document returned {len(response.results)} results",
                    url=self.base_url, hint="the server does not behave like a reranker")
            report.model = response.model or self.model
            report.is_reranker = True if report.is_reranker is None else report.is_reranker
            report.probe_score = response.results[0].relevance_score
            report.probe_tokens = response.usage.total_tokens
            report.ok = True
        except RerankError as exc:
            report.error = exc
        if self._profile is not None:
            report.server = self._profile.server
            report.wire = self._profile.wire if self._profile.confirmed else None
        return report
