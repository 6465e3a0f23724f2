"""Requests in flight and the drain flag: what SIGTERM waits for and /health reports."""

from __future__ import annotations

import time
from dataclasses import dataclass

from local_server.batcher import Batcher


@dataclass
class Traffic:
    """Requests being answered now (counted from their first byte, on the event loop), and the drain flag."""

    in_flight: int = 0
    draining: bool = False

    def drain(self, seconds: float, batcher: Batcher) -> None:
        """SIGTERM: let the requests in flight finish for up to `seconds`, then fail the rest (503).

        Blocks: `rerank-kit serve` runs it in a thread of its own while uvicorn stops accepting.
        """
        self.draining = True
        deadline = time.monotonic() + seconds
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        batcher.close("the server is shutting down and could not finish this request in time")
