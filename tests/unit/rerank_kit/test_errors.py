"""The client's error families (rerank_kit/errors.py): what a caller catches by kind."""

from __future__ import annotations

from rerank_kit.errors import (
    AuthError,
    BadRequestError,
    ConfigurationError,
    ConnectionFailedError,
    InvalidInputError,
    ModelNotServedError,
    NotARerankerError,
    RateLimitError,
    RerankError,
    RerankTimeoutError,
    ServerError,
    StatusError,
    TransportError,
)


def test_families_do_not_overlap_and_all_are_rerank_errors() -> None:
    families = [ConfigurationError, InvalidInputError, TransportError, StatusError, NotARerankerError,
                ModelNotServedError]
    assert all(issubclass(family, RerankError) for family in families)
    assert not [(a, b) for a in families for b in families if a is not b and issubclass(a, b)]
    assert {cls.__base__ for cls in (ConnectionFailedError, RerankTimeoutError)} == {TransportError}
    assert {cls.__base__ for cls in (AuthError, BadRequestError, RateLimitError, ServerError)} == {StatusError}
