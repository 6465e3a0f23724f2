"""The benchmark's load generator (benchmarks/loadgen.py) stays on loopback."""

from __future__ import annotations

import pytest

from benchmarks.loadgen import run_load
from benchmarks.workload import Request


def test_load_generator_refuses_non_loopback_targets() -> None:
    with pytest.raises(ValueError, match="loopback"):
        run_load("http://192.0.2.1:8086/rerank", lambda r: {}, [Request("q", ["d"])], concurrency=1,
                 max_seconds=1)
