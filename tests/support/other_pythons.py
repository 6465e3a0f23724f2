"""The other Pythons the suite runs code under (the Dify plugin's 3.12, FlagEmbedding's reference stack), each
named by `make test` in an environment variable; without it the tests that need it fail saying what to set."""

from __future__ import annotations

import os

import pytest


def python_named_by(variable: str, what: str) -> str:
    python = os.environ.get(variable)
    if not python:
        pytest.fail(f"{variable} is not set: point it at {what}")
    return python
