"""The "rerank-kit tools" provider: its credentials are checked against the server, as the model plugin's are."""

from __future__ import annotations

from typing import Any

from dify_plugin import ToolProvider
from dify_plugin.errors.tool import ToolProviderCredentialValidationError

from rerank_kit.client.forms import check_credentials


class RerankKitToolsProvider(ToolProvider):
    def _validate_credentials(self, credentials: dict[str, Any]) -> None:
        """Reachable, key accepted, a reranker (the shared client's `check()`); the failure keeps its hint."""
        report = check_credentials(credentials)
        if not report.ok:
            raise ToolProviderCredentialValidationError(report.message) from report.error
