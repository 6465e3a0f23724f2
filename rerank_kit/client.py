"""The shared rerank client: one `rerank(query, documents, top_n)` call for every integration.

`RerankClient` (sync) and `AsyncRerankClient` share one implementation. Everything that decides
something (URL normalisation, dialect detection, request bodies, response parsing, error mapping,
retries, batching) lives in `_ClientCore` as generator "flows" that yield what to do next (an HTTP
`_Call` or a `_Sleep`) and receive its outcome; the two classes only execute those steps, one with
`httpx.Client` and `time.sleep`, the other with `httpx.AsyncClient` and `asyncio.sleep`.

Light by design: httpx + pydantic only (it ships inside the Dify plugin and is copied into RAGFlow).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import random
import re
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any, TypeVar

import httpx

from rerank_kit import DEFAULT_PORT, __version__
from rerank_kit.errors import (
    AuthError,
    BadRequestError,
    ConnectionFailedError,
    RateLimitError,
    RerankError,
    RerankTimeoutError,
    ServerError,
)
from rerank_kit.protocol import RerankResponse, RerankResult, ResultDocument, Usage

__all__ = [
    "AsyncRerankClient",
    "CheckReport",
    "Dialect",
    "RerankClient",
    "ServerProfile",
    "model_matches",
    "normalize_base_url",
]

PROBE_QUERY = "What is the capital of France?"
PROBE_DOCUMENT = "Paris is the capital and largest city of France."

_T = TypeVar("_T")
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "0.0.0.0", "::1"}
_ROUTE_SUFFIXES = ("/api/v1/rerank", "/v1/rerank", "/v2/rerank", "/rerank", "/v1", "/v2")
_SCHEMES = re.compile(r"^(?:(https?)://)+", re.IGNORECASE)
_NOT_RETRIED_5XX = {501, 505}
# The connection failed or broke before an answer arrived: a rerank is idempotent, so sending it again is
# safe (a keep-alive connection the server closed, a server restart). Timeouts are not: the server is
# slow, and a second copy of the work would only add to its queue.
_RETRIED_TRANSPORT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadError, httpx.WriteError,
                             httpx.RemoteProtocolError)
_MAX_DETAIL = 200


class Dialect(StrEnum):
    """How a server wants to be called: the route and the body family."""

    RERANK_KIT = "rerank-kit"  # POST /rerank with `documents` (GET /info says server: rerank-kit)
    TEI = "tei"  # POST /rerank with `texts`, bare-list response (GET /info, no rerank-kit marker)
    INFINITY = "infinity"  # POST /rerank with `documents` (GET /models lists the models)
    COHERE = "cohere"  # POST /v1/rerank: Cohere v1, Jina, vLLM, Xinference, GPUStack (GET /v1/models)
    OPENAI = "openai"  # POST /rerank with `documents`: OpenAI-compatible proxies found by a first response

    @property
    def path(self) -> str:
        return "/v1/rerank" if self is Dialect.COHERE else "/rerank"


@dataclass(frozen=True)
class ServerProfile:
    """What detection learnt about a server; `dialect` is None until a route has answered."""

    dialect: Dialect | None = None
    confirmed: bool = False
    models: tuple[str, ...] = ()
    is_reranker: bool | None = None
    max_docs: int | None = None
    max_input_length: int | None = None


@dataclass
class CheckReport:
    """Credential/endpoint validation result; `check()` fills it and never raises for server problems."""

    url: str
    ok: bool = False
    error: RerankError | None = None
    dialect: str | None = None
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
        return (f"OK: {self.dialect} server at {self.url} serves {self.model or 'an unnamed model'}"
                + (f" ({limits})" if limits else ""))


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    body: Any = None


@dataclass(frozen=True)
class _Sleep:
    seconds: float


@dataclass(frozen=True)
class _Done:
    value: Any


_Step = _Call | _Sleep
_Flow = Generator[_Step, Any, _T]


def _advance(flow: _Flow[Any], outcome: Any) -> _Step | _Done:
    """Hand `outcome` (a response, a transport exception or None) to the flow; its next step or its result."""
    try:
        return flow.send(outcome)
    except StopIteration as stop:
        return _Done(stop.value)


def normalize_base_url(url: str) -> str:
    """Forgive the usual URL mistakes: no scheme, doubled `http://`, route suffixes, trailing slashes.

    `host:8086`, `http://host:8086/`, `.../v1`, `.../rerank`, `.../v1/rerank` all become `http://host:8086`.
    """
    text = url.strip()
    match = _SCHEMES.match(text)
    scheme = match.group(1).lower() if match else "http"
    rest = text[match.end():] if match else text
    rest = rest.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    stripped = True
    while stripped:
        stripped = False
        for suffix in _ROUTE_SUFFIXES:
            if rest.lower().endswith(suffix):
                rest = rest[: -len(suffix)].rstrip("/")
                stripped = True
    if not rest or rest.startswith("/"):
        raise BadRequestError(f"the server URL {url!r} has no host", hint=f"use e.g. http://localhost:{DEFAULT_PORT}")
    try:
        httpx.URL(f"{scheme}://{rest}")
    except httpx.InvalidURL as exc:
        raise BadRequestError(f"the server URL {url!r} is not valid: {exc}",
                              hint=f"use e.g. http://localhost:{DEFAULT_PORT}") from None
    return f"{scheme}://{rest}"


def _prefers_v1(url: str) -> bool:
    path = url.strip().split("?", 1)[0].rstrip("/").lower()
    return path.endswith(("/v1", "/v1/rerank"))


def model_matches(requested: str, served: str) -> bool:
    """Same model: equal ids, or equal last path parts (hub id vs local folder), case-insensitively."""
    def base(name: str) -> str:
        return re.split(r"[/\\]", name.strip().rstrip("/\\").lower())[-1]

    return requested.strip().lower() == served.strip().lower() or base(requested) == base(served)


def _url_forms_hint(base_url: str) -> str:
    return (f"use the server's base URL: {base_url}, {base_url}/v1 or {base_url}/v1/rerank all work "
            "(the client adds the route)")


def _connection_hint(url: httpx.URL, reason: str) -> str:
    host, port = url.host, url.port or (443 if url.scheme == "https" else 80)
    if host in _LOCAL_HOSTS and url.port is None:
        return (f"the URL has no port, so port {port} was tried: rerank-kit listens on "
                f"http://{host}:{DEFAULT_PORT} by default (from Docker: http://host.docker.internal:{DEFAULT_PORT})")
    if host in _LOCAL_HOSTS:
        return (f"is `rerank-kit serve` running on port {port}? From Docker, use "
                f"http://host.docker.internal:{port} instead of localhost")
    if host == "host.docker.internal":
        return (f"host.docker.internal only resolves inside Docker (on Linux add extra_hosts: "
                f"host.docker.internal:host-gateway); outside Docker use http://localhost:{port}")
    if re.search(r"not known|nodename|getaddrinfo|resolution|resolve", reason, re.IGNORECASE):
        return f"the host name {host!r} does not resolve: check the spelling of the URL"
    return f"check that the server is running and that {host}:{port} is reachable from here (firewall, network)"


def _is_html(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "")
    return "html" in content_type or response.text.lstrip()[:1] == "<"


def _error_detail(response: httpx.Response) -> str:
    """The server's own error text, short: `error`, `detail` or `message` of a JSON body, else the text."""
    if _is_html(response):
        return "an HTML page"
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:_MAX_DETAIL] or "an empty body"
    if isinstance(data, dict):
        for key in ("error", "detail", "message"):
            if data.get(key):
                value = data[key]
                return (value if isinstance(value, str) else json.dumps(value))[:_MAX_DETAIL]
    return json.dumps(data)[:_MAX_DETAIL]


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class _ClientCore:
    """Settings, state and every decision; the subclasses only run the steps the flows yield."""

    def __init__(self, base_url: str, api_key: str | None = None, model: str | None = None, *,
                 timeout: float = 60.0, connect_timeout: float = 5.0, max_retries: int = 2,
                 backoff: float = 0.5, max_backoff: float = 8.0, max_retry_wait: float = 60.0,
                 batch_size: int | None = None, clock: Callable[[], float] = time.time,
                 jitter: Callable[[], float] = random.random) -> None:
        self.base_url = normalize_base_url(base_url)
        self.model = model.strip() if model and model.strip() else None
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_retries = max(0, max_retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_wait = max_retry_wait
        self.batch_size = batch_size if batch_size and batch_size > 0 else None
        self._clock = clock
        self._jitter = jitter
        self._prefer_v1 = _prefers_v1(base_url)
        self._profile: ServerProfile | None = None
        self._headers = {"Accept": "application/json", "User-Agent": f"rerank-kit/{__version__}"}
        if api_key and api_key.strip():
            self._headers["Authorization"] = f"Bearer {api_key.strip()}"
        self._has_key = "Authorization" in self._headers

    @property
    def profile(self) -> ServerProfile | None:
        """What detection found so far (None before the first call)."""
        return self._profile

    @property
    def dialect(self) -> Dialect | None:
        return self._profile.dialect if self._profile else None

    def _http_options(self) -> dict[str, Any]:
        """httpx client settings shared by both drivers: base URL, headers, separate connect timeout."""
        return {"base_url": self.base_url, "headers": self._headers,
                "timeout": httpx.Timeout(self.timeout, connect=self.connect_timeout)}

    # -- retry policy ------------------------------------------------------------------------------

    def _backoff_delay(self, attempt: int) -> float:
        """Exponential backoff with equal jitter: half the step fixed, half random."""
        step = min(self.max_backoff, self.backoff * 2 ** attempt)
        return step / 2 + step / 2 * self._jitter()

    def _retry_after(self, response: httpx.Response) -> float | None:
        value = response.headers.get("retry-after", "").strip()
        if not value:
            return None
        if value.isdigit():
            return float(value)
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - self._clock())
        except (TypeError, ValueError):
            return None

    def _send(self, call: _Call, *, retry_statuses: bool = True) -> _Flow[httpx.Response]:
        """Send `call`, retrying broken connections, 429 and 5xx with backoff; never 4xx or read timeouts."""
        attempt = 0
        while True:
            outcome = yield call
            if isinstance(outcome, httpx.Response):
                status = outcome.status_code
                retryable = status == 429 or (status >= 500 and status not in _NOT_RETRIED_5XX)
                if not (retry_statuses and retryable) or attempt >= self.max_retries:
                    return outcome
                asked = self._retry_after(outcome)
                if asked is not None and asked > self.max_retry_wait:
                    return outcome
                wait = max(asked or 0.0, self._backoff_delay(attempt))
            else:
                if not isinstance(outcome, _RETRIED_TRANSPORT_ERRORS) or attempt >= self.max_retries:
                    raise self._transport_error(call, outcome) from outcome
                wait = self._backoff_delay(attempt)
            yield _Sleep(wait)
            attempt += 1

    # -- error mapping -----------------------------------------------------------------------------

    def _transport_error(self, call: _Call, exc: Exception) -> RerankError:
        url = httpx.URL(self.base_url + call.path)
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, httpx.ConnectTimeout):
            return RerankTimeoutError(f"connecting took longer than {self.connect_timeout:g}s", url=str(url),
                                      hint=_connection_hint(url, reason))
        if isinstance(exc, httpx.TimeoutException):
            return RerankTimeoutError(
                f"no complete answer within {self.timeout:g}s", url=str(url),
                hint="the reranker is slow for this input: raise the timeout, send fewer or shorter documents, "
                     "or use a smaller model on CPU")
        if isinstance(exc, httpx.ConnectError):
            return ConnectionFailedError(f"cannot connect: {reason}", url=str(url), hint=_connection_hint(url, reason))
        return ConnectionFailedError(
            f"the connection broke before an answer: {reason}", url=str(url),
            hint="the rerank server closed the connection or restarted: check its log, then retry")

    def _status_error(self, response: httpx.Response) -> RerankError:
        status, url = response.status_code, str(response.request.url)
        message = f"HTTP {status} from the rerank server: {_error_detail(response)}"
        if status in (401, 403):
            hint = ("the key was rejected: set the API key to the server's RERANK_API_KEY" if self._has_key
                    else "the server requires a key: set the API key to the server's RERANK_API_KEY")
            return AuthError(message, url=url, hint=hint, status=status)
        if status == 429:
            return RateLimitError(message, url=url, status=status,
                                  hint="the server is rate-limiting or overloaded: retry later or send fewer requests")
        if status in (404, 405):
            hint = ("this URL serves a web page, not a rerank API: point it at the rerank server "
                    f"(default port {DEFAULT_PORT})" if _is_html(response) else _url_forms_hint(self.base_url))
            return BadRequestError(message, url=url, hint=hint, status=status)
        if status == 413:
            return BadRequestError(message, url=url, status=status,
                                   hint="too many or too large documents in one request: lower batch_size")
        if status < 500:
            return BadRequestError(message, url=url, status=status,
                                   hint="the server refused the request: the query and every document must be "
                                        "non-empty text within the server's limits")
        hint = ("the server is overloaded or still loading its model: retry shortly" if status == 503
                else "the server failed: see its log")
        return ServerError(message, url=url, hint=hint, status=status)

    def _shape_error(self, response: httpx.Response, dialect: Dialect, problem: str) -> ServerError:
        expected = ("TEI's list of {index, score}" if dialect is Dialect.TEI
                    else "a Cohere-style {results: [{index, relevance_score}]}")
        got = "an HTML page" if _is_html(response) else problem
        return ServerError(f"the response is not a rerank response: {got}", url=str(response.request.url),
                           hint=f"expected {expected} from a {dialect.value} server; is this URL a rerank server?",
                           status=response.status_code)

    # -- detection -----------------------------------------------------------------------------------

    def _probe(self, path: str) -> _Flow[Any]:
        """GET a metadata route; its JSON, or None when the route is missing or not JSON."""
        response = yield from self._send(_Call("GET", path), retry_statuses=False)
        if response.status_code in (401, 403):
            raise self._status_error(response)
        return _json(response) if response.status_code == 200 and not _is_html(response) else None

    def _profile_flow(self) -> _Flow[ServerProfile]:
        """Detect the dialect once: `/info` (TEI, rerank-kit), `/v1/models`, `/models`; else wait for a rerank."""
        if self._profile is not None:
            return self._profile
        info = yield from self._probe("/info")
        profile = _profile_from_info(info)
        if profile is None:
            models = yield from self._probe("/v1/models")
            profile = _profile_from_models(models, Dialect.COHERE)
        if profile is None:
            models = yield from self._probe("/models")
            profile = _profile_from_models(models, Dialect.INFINITY)
        self._profile = profile or ServerProfile()
        return self._profile

    def _candidates(self, profile: ServerProfile) -> list[Dialect]:
        if profile.confirmed and profile.dialect is not None:
            return [profile.dialect]
        first = profile.dialect or (Dialect.COHERE if self._prefer_v1 else Dialect.OPENAI)
        return list(dict.fromkeys([first, Dialect.OPENAI, Dialect.COHERE]))

    # -- rerank --------------------------------------------------------------------------------------

    def _rerank_call(self, dialect: Dialect, query: str, documents: list[str], top_n: int | None) -> _Call:
        if dialect is Dialect.TEI:
            return _Call("POST", dialect.path, {"query": query, "texts": documents, "truncate": True,
                                                "raw_scores": False, "return_text": False})
        body: dict[str, Any] = {"query": query, "documents": documents, "return_documents": False}
        profile = self._profile or ServerProfile()
        model = self.model or (profile.models[0] if len(profile.models) == 1 else None)
        if model:
            body["model"] = model
        if top_n:
            body["top_n"] = top_n
        return _Call("POST", dialect.path, body)

    def _batch_flow(self, query: str, documents: list[str], top_n: int | None) -> _Flow[RerankResponse]:
        """One request; on an unconfirmed dialect, try the routes in turn and remember the one that answers."""
        profile = self._profile or ServerProfile()
        response: httpx.Response | None = None
        for dialect in self._candidates(profile):
            response = yield from self._send(self._rerank_call(dialect, query, documents, top_n))
            if (response.status_code in (400, 422) and dialect is not Dialect.TEI
                    and not profile.confirmed and "texts" in response.text):
                dialect = Dialect.TEI
                response = yield from self._send(self._rerank_call(dialect, query, documents, top_n))
            if response.status_code in (404, 405) and not profile.confirmed:
                continue
            if response.is_success:
                self._profile = replace(profile, dialect=dialect, confirmed=True)
            break
        assert response is not None
        if not response.is_success:
            raise self._status_error(response)
        return self._parse(response, self.dialect or Dialect.OPENAI, len(documents))

    def _parse(self, response: httpx.Response, dialect: Dialect, count: int) -> RerankResponse:
        """Either shape (TEI's bare list or `{results: [...]}`) into a RerankResponse."""
        data = _json(response)
        if isinstance(data, list):
            items, score_key, usage, model, ident = data, "score", {}, "", ""
        elif isinstance(data, dict) and isinstance(data.get("results"), list):
            items, score_key = data["results"], "relevance_score"
            usage, model, ident = _usage(data), str(data.get("model") or ""), str(data.get("id") or "")
        else:
            raise self._shape_error(response, dialect, "no result list in the body")
        results = []
        for item in items:
            index = item.get("index") if isinstance(item, dict) else None
            score = item.get(score_key, item.get("score")) if isinstance(item, dict) else None
            if not isinstance(index, int) or not 0 <= index < count:
                raise self._shape_error(response, dialect, f"a result with an invalid index: {item!r:.80}")
            if not isinstance(score, int | float) or not math.isfinite(score):
                raise self._shape_error(response, dialect, f"a result without a numeric score: {item!r:.80}")
            results.append(RerankResult(index=index, relevance_score=float(score)))
        return RerankResponse(id=ident, model=model, results=results, usage=Usage(**usage))

    def _rerank_flow(self, query: str, documents: Sequence[str], top_n: int | None) -> _Flow[RerankResponse]:
        docs = list(documents)
        if not all(isinstance(doc, str) for doc in docs):
            raise BadRequestError("every document must be a string", hint="pass the documents' text, not objects")
        if not docs:
            return RerankResponse(model=self.model or "", results=[])
        if not isinstance(query, str) or not query.strip():
            raise BadRequestError("the query is empty", hint="pass the user's question as the query")
        profile = yield from self._profile_flow()
        if profile.is_reranker is False:
            raise BadRequestError(f"the server at {self.base_url} serves a model that is not a reranker",
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

    def _check_flow(self) -> _Flow[CheckReport]:
        report = CheckReport(url=self.base_url)
        try:
            profile = yield from self._profile_flow()
            report.served_models = list(profile.models)
            report.is_reranker, report.max_docs = profile.is_reranker, profile.max_docs
            report.max_input_length = profile.max_input_length
            if self.model and profile.models and not any(model_matches(self.model, m) for m in profile.models):
                raise BadRequestError(
                    f"model {self.model} is not served; the server serves {', '.join(profile.models)}",
                    url=self.base_url, hint=f"set the model name to {profile.models[0]}")
            started = time.perf_counter()
            response = yield from self._rerank_flow(PROBE_QUERY, [PROBE_DOCUMENT], None)
            report.latency_ms = (time.perf_counter() - started) * 1000
            if len(response.results) != 1:
                raise ServerError(f"the probe rerank of one document returned {len(response.results)} results",
                                  url=self.base_url, hint="the server does not behave like a reranker")
            report.dialect = self.dialect.value if self.dialect else None
            report.model = response.model or self.model
            report.is_reranker = True if report.is_reranker is None else report.is_reranker
            report.probe_score = response.results[0].relevance_score
            report.probe_tokens = response.usage.total_tokens
            report.ok = True
        except RerankError as exc:
            report.error = exc
            report.dialect = self.dialect.value if self.dialect else None
        return report


def _usage(data: dict[str, Any]) -> dict[str, int]:
    """Token counts from `usage` (Jina, Infinity, rerank-kit) or Xinference's `meta.tokens`."""
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    total = usage.get("total_tokens")
    prompt = usage.get("prompt_tokens", total)
    if not isinstance(total, int):
        meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
        tokens = meta.get("tokens") if isinstance(meta.get("tokens"), dict) else {}
        total = sum(v for v in (tokens.get("input_tokens"), tokens.get("output_tokens")) if isinstance(v, int))
        prompt = tokens.get("input_tokens", total)
    return {"prompt_tokens": prompt if isinstance(prompt, int) else 0, "total_tokens": total}


def _profile_from_info(info: Any) -> ServerProfile | None:
    """TEI-style `/info` (TEI or rerank-kit)."""
    if not isinstance(info, dict) or not info.get("model_id"):
        return None
    model_type = info.get("model_type")
    is_reranker = ("reranker" in model_type if isinstance(model_type, dict | str) else None)
    max_docs = info.get("max_docs") or info.get("max_client_batch_size")
    max_length = info.get("max_input_length")
    rerank_kit = str(info.get("server") or "").lower() == "rerank-kit"
    return ServerProfile(
        dialect=Dialect.RERANK_KIT if rerank_kit else Dialect.TEI, confirmed=True,
        models=(str(info["model_id"]),), is_reranker=is_reranker,
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


def _profile_from_models(listing: Any, dialect: Dialect) -> ServerProfile | None:
    """An OpenAI-style `{"data": [{"id": ...}]}` list (vLLM, Xinference, GPUStack, Infinity)."""
    if not isinstance(listing, dict) or not isinstance(listing.get("data"), list):
        return None
    entries = [entry for entry in listing["data"] if isinstance(entry, dict) and entry.get("id")]
    if not entries:
        return None
    declared = [kind for kind in map(_declared_rerank, entries) if kind is not None]
    is_reranker = any(declared) if declared else None
    lengths = [entry.get("max_model_len") or entry.get("max_input_length") for entry in entries]
    max_length = lengths[0] if len(entries) == 1 and isinstance(lengths[0], int) else None
    return ServerProfile(dialect=dialect, models=tuple(str(entry["id"]) for entry in entries),
                         is_reranker=is_reranker, max_input_length=max_length)


class RerankClient(_ClientCore):
    """Synchronous client. `sleep` is injectable (tests pass a fake clock)."""

    def __init__(self, base_url: str, api_key: str | None = None, model: str | None = None, *,
                 sleep: Callable[[float], Any] = time.sleep, transport: httpx.BaseTransport | None = None,
                 **options: Any) -> None:
        super().__init__(base_url, api_key, model, **options)
        self._sleep = sleep
        self._http = httpx.Client(transport=transport, **self._http_options())

    def _execute(self, step: _Step) -> Any:
        if isinstance(step, _Sleep):
            return self._sleep(step.seconds)
        try:
            return self._http.request(step.method, step.path, json=step.body)
        except httpx.TransportError as exc:
            return exc

    def _run(self, flow: _Flow[_T]) -> _T:
        step = _advance(flow, None)
        while not isinstance(step, _Done):
            step = _advance(flow, self._execute(step))
        return step.value

    def rerank(self, query: str, documents: Sequence[str], top_n: int | None = None) -> RerankResponse:
        """Score `documents` against `query`; results sorted by score, `index` into `documents`."""
        return self._run(self._rerank_flow(query, documents, top_n))

    def check(self) -> CheckReport:
        """Validate URL, key, model and reranker-ness with metadata routes and a one-document probe."""
        return self._run(self._check_flow())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RerankClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncRerankClient(_ClientCore):
    """Asynchronous twin of RerankClient: the same flows, run with httpx.AsyncClient."""

    def __init__(self, base_url: str, api_key: str | None = None, model: str | None = None, *,
                 sleep: Callable[[float], Any] = asyncio.sleep, transport: httpx.AsyncBaseTransport | None = None,
                 **options: Any) -> None:
        super().__init__(base_url, api_key, model, **options)
        self._sleep = sleep
        self._http = httpx.AsyncClient(transport=transport, **self._http_options())

    async def _execute(self, step: _Step) -> Any:
        if isinstance(step, _Sleep):
            slept = self._sleep(step.seconds)
            return await slept if inspect.isawaitable(slept) else None
        try:
            return await self._http.request(step.method, step.path, json=step.body)
        except httpx.TransportError as exc:
            return exc

    async def _run(self, flow: _Flow[_T]) -> _T:
        step = _advance(flow, None)
        while not isinstance(step, _Done):
            step = _advance(flow, await self._execute(step))
        return step.value

    async def rerank(self, query: str, documents: Sequence[str], top_n: int | None = None) -> RerankResponse:
        """Score `documents` against `query`; results sorted by score, `index` into `documents`."""
        return await self._run(self._rerank_flow(query, documents, top_n))

    async def check(self) -> CheckReport:
        """Validate URL, key, model and reranker-ness with metadata routes and a one-document probe."""
        return await self._run(self._check_flow())

    async def close(self) -> None:
        await self._http.aclose()

    aclose = close

    async def __aenter__(self) -> AsyncRerankClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
