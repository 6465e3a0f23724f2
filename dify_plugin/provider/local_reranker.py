"""Dify model provider for a rerank-kit server: provider credentials are checked against the server."""

from __future__ import annotations

from dify_plugin import ModelProvider
from dify_plugin.entities.model import ModelType


class LocalRerankerProvider(ModelProvider):
    def validate_provider_credentials(self, credentials: dict) -> None:
        """Check the server URL (and key) for real; raises CredentialsValidateFailedError with a hint."""
        self.get_model_instance(ModelType.RERANK).validate_credentials("", credentials)
