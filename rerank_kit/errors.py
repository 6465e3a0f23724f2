"""Typed errors of the rerank client; each carries the URL tried and a hint a user can act on.

Integrations map these onto their platform's errors (Dify's Invoke* errors, RAGFlow's exceptions).
"""

from __future__ import annotations


class RerankError(Exception):
    """Base class: `message`, the `url` tried, a one-line `hint`, and the HTTP `status` if any."""

    kind = "error"

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


class ConnectionFailedError(RerankError):
    """The server could not be reached (refused, DNS, TLS)."""

    kind = "connection"


class RerankTimeoutError(RerankError):
    """Connecting or reading took longer than the configured timeout."""

    kind = "timeout"


class AuthError(RerankError):
    """401/403: the API key is missing or wrong."""

    kind = "auth"


class BadRequestError(RerankError):
    """4xx other than auth/rate-limit: the request (or the URL path) is wrong; never retried."""

    kind = "bad_request"


class RateLimitError(RerankError):
    """429 (or 503 with Retry-After) after the retries ran out."""

    kind = "rate_limit"


class ServerError(RerankError):
    """5xx after the retries ran out, or a response that is not a rerank response."""

    kind = "server"


__all__ = [
    "AuthError",
    "BadRequestError",
    "ConnectionFailedError",
    "RateLimitError",
    "RerankError",
    "RerankTimeoutError",
    "ServerError",
]
