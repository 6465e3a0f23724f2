"""Transport policy: the steps a flow yields, when a request is sent again, and what a failure becomes.

Apart from the wire formats because it changes with how servers fail (timeouts, overload, restarts),
not with what they speak. Nothing here does I/O: `TransportPolicy.send` yields `Call`/`Sleep` steps
that a driver (sync or async) executes.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx

from rerank_kit import DEFAULT_PORT
from rerank_kit.client.urls import connection_hint, url_forms_hint
from rerank_kit.errors import (
    AuthError,
    BadRequestError,
    ConnectionFailedError,
    ModelNotServedError,
    RateLimitError,
    RerankTimeoutError,
    ServerError,
    StatusError,
    TransportError,
)

_T = TypeVar("_T")
_NOT_RETRIED_5XX = {501, 505}
# The connection failed or broke before an answer arrived: a rerank is idempotent, so sending it again is
# safe (a keep-alive connection the server closed, a server restart). Timeouts are not: the server is
# slow, and a second copy of the work would only add to its queue.
_RETRIED_TRANSPORT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadError, httpx.WriteError,
                             httpx.RemoteProtocolError)
_MAX_DETAIL = 200


@dataclass(frozen=True)
class Call:
    """Send one HTTP request; the driver answers with the httpx.Response or the httpx.TransportError."""

    method: str
    path: str
    body: Any = None


@dataclass(frozen=True)
class Sleep:
    """Wait before the next attempt; the driver answers with None."""

    seconds: float


@dataclass(frozen=True)
class Done:
    value: Any


Step = Call | Sleep
Flow = Generator[Step, Any, _T]


def advance(flow: Flow[Any], outcome: Any) -> Step | Done:
    """Hand `outcome` (a response, a transport exception or None) to the flow; its next step or its result."""
    try:
        return flow.send(outcome)
    except StopIteration as stop:
        return Done(stop.value)


def is_html(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "")
    return "html" in content_type or response.text.lstrip()[:1] == "<"


def json_body(response: httpx.Response) -> Any:
    """The decoded JSON body, or None when the body is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def _error_type(response: httpx.Response) -> str | None:
    """`error_type` of a TEI/rerank-kit error body."""
    data = json_body(response)
    return data.get("error_type") if isinstance(data, dict) else None


def _error_detail(response: httpx.Response) -> str:
    """The server's own error text, short: `error`, `detail` or `message` of a JSON body, else the text."""
    if is_html(response):
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


@dataclass(frozen=True)
class TransportPolicy:
    """Timeouts, retries with backoff, and the mapping of transport failures and HTTP statuses to errors."""

    base_url: str
    timeout: float = 60.0
    connect_timeout: float = 5.0
    max_retries: int = 2
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_wait: float = 60.0
    has_key: bool = False
    clock: Callable[[], float] = time.time
    jitter: Callable[[], float] = random.random

    @property
    def http_timeout(self) -> httpx.Timeout:
        """A generous read timeout (a CPU reranker is slow on big batches) and a short, separate connect one."""
        return httpx.Timeout(self.timeout, connect=self.connect_timeout)

    def backoff_delay(self, attempt: int) -> float:
        """Exponential backoff with equal jitter: half the step fixed, half random."""
        step = min(self.max_backoff, self.backoff * 2 ** attempt)
        return step / 2 + step / 2 * self.jitter()

    def retry_after(self, response: httpx.Response) -> float | None:
        """The server's Retry-After in seconds (a number or an HTTP date), None when absent or unreadable."""
        value = response.headers.get("retry-after", "").strip()
        if not value:
            return None
        if value.isdigit():
            return float(value)
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - self.clock())
        except (TypeError, ValueError):
            return None

    def send(self, call: Call, *, retry_statuses: bool = True) -> Flow[httpx.Response]:
        """Send `call`, retrying broken connections, 429 and 5xx with backoff; never 4xx or read timeouts.

        Returns the last response, whatever its status; raises a TransportError when none arrived.
        """
        attempt = 0
        while True:
            outcome = yield call
            if isinstance(outcome, httpx.Response):
                status = outcome.status_code
                retryable = status == 429 or (status >= 500 and status not in _NOT_RETRIED_5XX)
                if not (retry_statuses and retryable) or attempt >= self.max_retries:
                    return outcome
                asked = self.retry_after(outcome)
                if asked is not None and asked > self.max_retry_wait:
                    return outcome
                wait = max(asked or 0.0, self.backoff_delay(attempt))
            else:
                if not isinstance(outcome, _RETRIED_TRANSPORT_ERRORS) or attempt >= self.max_retries:
                    raise self.transport_error(call, outcome) from outcome
                wait = self.backoff_delay(attempt)
            yield Sleep(wait)
            attempt += 1

    def transport_error(self, call: Call, exc: Exception) -> TransportError:
        url = httpx.URL(self.base_url + call.path)
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, httpx.ConnectTimeout):
            return RerankTimeoutError(f"connecting took longer than {self.connect_timeout:g}s", url=str(url),
                                      hint=connection_hint(url, reason))
        if isinstance(exc, httpx.TimeoutException):
            return RerankTimeoutError(
                f"no complete answer within {self.timeout:g}s", url=str(url),
                hint="the reranker is slow for this input: raise the timeout, send fewer or shorter documents, "
                     "or use a smaller model on CPU")
        if isinstance(exc, httpx.ConnectError):
            return ConnectionFailedError(f"cannot connect: {reason}", url=str(url), hint=connection_hint(url, reason))
        return ConnectionFailedError(
            f"the connection broke before an answer: {reason}", url=str(url),
            hint="the rerank server closed the connection or restarted: check its log, then retry")

    def status_error(self, response: httpx.Response) -> StatusError | ModelNotServedError:
        """The error family of an HTTP error answer; a 503 with Retry-After is an overloaded server: rate limit;
        rerank-kit's 404 ModelNotFound: the model is not served (the message names the served ones)."""
        status, url = response.status_code, str(response.request.url)
        message = f"HTTP {status} from the rerank server: {_error_detail(response)}"
        if status in (401, 403):
            hint = ("the key was rejected: set the API key to the server's RERANK_API_KEY" if self.has_key
                    else "the server requires a key: set the API key to the server's RERANK_API_KEY")
            return AuthError(message, url=url, hint=hint, status=status)
        if status == 429 or (status == 503 and "retry-after" in response.headers):
            return RateLimitError(message, url=url, status=status,
                                  hint="the server is rate-limiting or overloaded: retry later or send fewer requests")
        if status == 404 and _error_type(response) == "ModelNotFound":
            return ModelNotServedError(message, url=url, status=status,
                                       hint="set the model name to one of the served models the message names")
        if status in (404, 405):
            hint = ("this URL serves a web page, not a rerank API: point it at the rerank server "
                    f"(default port {DEFAULT_PORT})" if is_html(response) else url_forms_hint(self.base_url))
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
