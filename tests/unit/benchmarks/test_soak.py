"""The soak driver (benchmarks/soak.py) behind the load tests: it stays on loopback and sees a wrong answer."""

from __future__ import annotations

import pytest

from benchmarks.soak import compare, require_loopback


def test_the_driver_refuses_remote_urls_and_catches_wrong_answers() -> None:
    """The load tests (tests/e2e/server/test_load.py) mean something only if the driver stays on loopback and can
    see a wrong answer."""
    for url in ("http://127.0.0.1:8086", "http://localhost:1", "http://[::1]:8086", "http://127.1.2.3:80"):
        require_loopback(url)
    for url in ("http://10.0.0.5:8086", "http://example.com", "http://0.0.0.0:8086", "http://[::]:80"):
        with pytest.raises(ValueError, match="loopback"):
            require_loopback(url)

    alone = {"results": [{"index": 2, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.5},
                         {"index": 1, "relevance_score": 0.5}, {"index": 3, "relevance_score": 0.1}]}
    tie_swapped = {"results": [alone["results"][0], alone["results"][2], alone["results"][1], alone["results"][3]]}
    assert compare(alone, alone) is None
    assert compare(alone, tie_swapped) is None  # equal scores may trade places
    swapped = {"results": [alone["results"][1], alone["results"][0], *alone["results"][2:]]}
    assert compare(alone, swapped) is not None
    nudged = {"results": [{**alone["results"][0], "relevance_score": 0.9 + 1e-4}, *alone["results"][1:]]}
    assert compare(alone, nudged) is not None
    assert compare(alone, {"results": alone["results"][:3]}) is not None
    tei = [{"index": 1, "score": 2.0, "text": "b"}, {"index": 0, "score": 1.0, "text": "a"}]
    assert compare(tei, tei) is None
    assert compare(tei, [{**tei[0], "text": "x"}, tei[1]]) is not None
    assert compare(tei, {"error": "boom", "error_type": "Backend"}) is not None
