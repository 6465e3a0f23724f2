"""Session fixtures: a tiny cross-encoder built on disk, and a live rerank-kit server serving it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from server_process import running_server


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_model import build_tiny_cross_encoder

    return build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-cross-encoder"))


@pytest.fixture(scope="session")
def live_server(tiny_model_dir: Path) -> Iterator[str]:
    """Base URL of a real `rerank-kit serve` process on loopback, serving the tiny model."""
    with running_server(tiny_model_dir) as base_url:
        yield base_url
