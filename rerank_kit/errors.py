"""Typed errors of the rerank client, in families a caller can catch by kind (as httpx does).

    RerankError
    ├── ConfigurationError      the client's settings are unusable (URL, a form value); nothing was sent
    ├── InvalidInputError       the query or documents are unusable; nothing was sent
    ├── TransportError          no HTTP answer: ConnectionFailedError, RerankTimeoutError
    ├── StatusError             an HTTP error answer: AuthError, BadRequestError, RateLimitError, ServerError
    ├── NotARerankerError       the server answers, but not as a reranker
    └── ModelNotServedError     the server does not serve the configured model

Each carries the URL tried and a hint a user can act on; integrations map the families onto their
platform's errors (Dify's Invoke* errors, RAGFlow's exceptions).
"""

from __future__ import annotations


class RerankError(Exception):
    """Base class: `message`, the `url` tried, a one-line `hint`, and the HTTP `status` if any."""

    def __init__(self, message: str, *, url: str | None = None, hint: str | None = None,
                 status: int | None = None) -> None:
        self.message = message
        self.url = url
        self.hint = hint
        self.status = status
        super().__init__(str(self))

    def __str__(self) -> str:
        text = self.message
        if self.url:
            text += f" (url: {self.url})"
        if self.hint:
            text += f". Hint: {self.hint}"
        return text


class ConfigurationError(RerankError):
    """The client cannot be used as configured (a URL without a host, a non-numeric timeout)."""


class InvalidInputError(RerankError):
    """The call's own input is unusable (an empty query, documents that are not text)."""


class TransportError(RerankError):
    """No HTTP answer arrived: the family of connection failures and timeouts."""


class ConnectionFailedError(TransportError):
    """The server could not be reached (refused, DNS, TLS), or the connection broke before an answer."""


class RerankTimeoutError(TransportError):
    """Connecting or reading took longer than the configured timeout."""


class StatusError(RerankError):
    """The server answered with an HTTP error status (in `status`) after the retries ran out."""


class AuthError(StatusError):
    """401/403: the API key is missing or wrong."""


class BadRequestError(StatusError):
    """4xx other than auth/rate-limit: the request (or the URL path) is wrong; never retried."""


class RateLimitError(StatusError):
    """429, or 503 with Retry-After (an overloaded server asking to come back), after the retries ran out."""


class ServerError(StatusError):
    """5xx (503 without Retry-After included) after the retries ran out: the server failed or is unavailable."""


class NotARerankerError(RerankError):
    """The server serves another kind of model, or its answer is not a rerank response (a web page, other JSON)."""


class ModelNotServedError(RerankError):
    """The configured model is not among the ones the server lists."""



__all__ = [
    "AuthError",
    "BadRequestError",
    "ConfigurationError",
    "ConnectionFailedError",
    "InvalidInputError",
    "ModelNotServedError",
    "NotARerankerError",
    "RateLimitError",
    "RerankError",
    "RerankTimeoutError",
    "ServerError",
    "StatusError",
    "TransportError",
]
