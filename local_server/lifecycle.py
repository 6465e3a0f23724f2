"""The server process around the app: a graceful SIGTERM, and logs that never show a credential."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from types import FrameType

import uvicorn

# `?api_key=...`, `&token=...`, `"api_key": "..."`, `X-Api-Key: ...`, `Authorization: Bearer|Basic|Token ...`:
# whatever a client or a proxy puts in a URL or a header line that reaches a log record (uvicorn's access
# log prints the full path with its query).
_CREDENTIAL = re.compile(
    r"(?i)(\b(?:x-)?(?:api[_-]?key|access[_-]?token|token|key|secret|password)\b[\"']?\s*[:=]\s*[\"']?)[^&\s\"',}]+"
    r"|(\b(?:bearer|basic|token)\s+)[A-Za-z0-9._~+/=-]{6,}")
_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "local_server")


def redact(text: str) -> str:
    return _CREDENTIAL.sub(lambda m: (m.group(1) or m.group(2)) + "***", text)


class RedactCredentials(logging.Filter):
    """Rewrites a record so no credential reaches a handler, at any level.

    The arguments are redacted one by one and keep their shape: uvicorn's access formatter unpacks them.
    A record that cannot be formatted is passed on untouched, for logging's own error report.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            if isinstance(record.args, tuple):
                record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
            elif isinstance(record.args, dict):
                record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
            if isinstance(record.msg, str):
                record.msg = redact(record.msg)
            if record.exc_text:
                record.exc_text = redact(record.exc_text)
        except Exception:  # never let the filter break the caller's logging call
            return True
        return True


def redact_credentials() -> None:
    """Put the filter on every handler of the server's loggers (a handler filter sees propagated records)."""
    credential_filter = RedactCredentials()
    for name in _LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactCredentials) for f in handler.filters):
                handler.addFilter(credential_filter)


class DrainingServer(uvicorn.Server):
    """SIGTERM or SIGINT: uvicorn stops accepting and waits for open requests while `drain` (in a thread of
    its own) lets the batcher finish them or answer them 503 within RERANK_DRAIN_SECONDS; then the process
    exits 0."""

    def __init__(self, config: uvicorn.Config, *, drain: Callable[[], None]) -> None:
        super().__init__(config)
        self._drain = drain

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        first = not self.should_exit
        super().handle_exit(sig, frame)
        # uvicorn re-raises a captured signal once it has shut down, so the process would die by it (-15)
        # even after a clean drain; a drained shutdown is an ordinary exit.
        self._captured_signals.clear()
        if first:
            threading.Thread(target=self._drain, name="rerank-drain", daemon=True).start()
