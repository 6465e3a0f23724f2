"""Client settings from a credential form, where every value is a string and blank means the default.

Dify sends form values as strings, and an optional field left empty as "" or not at all. Both Dify plugins
(the model provider and the workflow tool) read their form here, so a bad value is explained the same way,
and check their credentials here (`check_credentials`), each only mapping a failure onto its SDK's error.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rerank_kit import DOCKER_SERVER_URL
from rerank_kit.client.drivers import RerankClient
from rerank_kit.client.flows import CheckReport
from rerank_kit.errors import ConfigurationError, RerankError

DEFAULT_TIMEOUT_SECONDS = 60.0
DEFAULT_MAX_RETRIES = 2


def form_number(form: Mapping[str, Any], key: str, default: float, kind: type[int] | type[float]) -> int | float:
    """A non-negative number from the form; blank means `default`; anything else is a ConfigurationError."""
    raw = form.get(key)
    if raw is None or str(raw).strip() == "":
        return default
    try:
        value = kind(str(raw).strip())
    except ValueError:
        raise ConfigurationError(f"{key} must be a number, got {raw!r}",
                                 hint=f"enter a plain number such as {default:g}") from None
    if value < 0:
        raise ConfigurationError(f"{key} must not be negative, got {raw!r}", hint=f"the default is {default:g}")
    return value


@dataclass(frozen=True)
class FormSettings:
    """What a form configures (server URL, key, timeout, retries) plus the model; hashable, to key a client cache."""

    server_url: str
    api_key: str | None
    model: str | None
    timeout: float
    max_retries: int

    @classmethod
    def parse(cls, form: Mapping[str, Any], model: str | None = None) -> FormSettings:
        return cls(
            server_url=str(form.get("server_url") or DOCKER_SERVER_URL),
            api_key=form.get("api_key") or None,
            model=model or None,
            timeout=float(form_number(form, "timeout", DEFAULT_TIMEOUT_SECONDS, float)),
            max_retries=int(form_number(form, "max_retries", DEFAULT_MAX_RETRIES, int)),
        )

    def client(self) -> RerankClient:
        return RerankClient(self.server_url, api_key=self.api_key, model=self.model, timeout=self.timeout,
                            max_retries=self.max_retries)


# One client per configuration for the process's lifetime: it keeps its connection pool and the server's
# detected kind and wire format, so a rerank is one request instead of a detection probe plus the rerank.
# `check_credentials` uses a fresh `FormSettings.client()` instead, to see the server as it is now.
shared_client = functools.lru_cache(maxsize=32)(FormSettings.client)


def check_credentials(form: Mapping[str, Any], model: str | None = None) -> CheckReport:
    """The credential check of both Dify plugins: the server the form names, checked for real (reachable, key
    accepted, a reranker, serving `model` when one is named) with a fresh client, to see it as it is now.

    Never raises for a bad form or server: a malformed value or URL, found before any request, is the report's
    error too, so `report.message` explains every failure the same way.
    """
    try:
        with FormSettings.parse(form, model).client() as client:
            return client.check()
    except RerankError as error:  # a malformed form value or URL, before any request
        return CheckReport(url=str(form.get("server_url") or DOCKER_SERVER_URL), error=error)
