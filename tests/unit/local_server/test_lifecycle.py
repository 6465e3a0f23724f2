"""The server process around the app (local_server/lifecycle.py), in process: credentials redacted from every
form they take in a log line (URL query, JSON, header), a log record rewritten keeping the shape its formatter
unpacks, the filter put once on every handler of the server's loggers, and SIGTERM starting one drain and
exiting as an ordinary exit. Milliseconds each. (A real server's log: tests/e2e/server/test_request_life.py.)"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator

import pytest
import uvicorn

from local_server import lifecycle
from local_server.lifecycle import DrainingServer, RedactCredentials, redact, redact_credentials


@pytest.mark.parametrize(("line", "redacted"), [
    ("POST /v1/rerank?api_key=sk-1234&x=1 HTTP/1.1", "POST /v1/rerank?api_key=***&x=1 HTTP/1.1"),
    ("GET /info?access_token=zzz&secret=yyy", "GET /info?access_token=***&secret=***"),
    ('{"api_key": "sk-abcdef", "query": "q"}', '{"api_key": "***", "query": "q"}'),
    ("{'key': 'v', 'top_n': 2}", "{'key': '***', 'top_n': 2}"),
    ("X-Api-Key: abc123", "X-Api-Key: ***"),
    ("password: hunter2", "password: ***"),
    ("Authorization: Bearer sk-never-log-this", "Authorization: Bearer ***"),
    ("authorization: basic dXNlcjpwYXNz", "authorization: basic ***"),
    ("Token abcdef123", "Token ***"),
])
def test_every_form_of_a_credential_is_redacted(line: str, redacted: str) -> None:
    assert redact(line) == redacted


@pytest.mark.parametrize("line", [
    "max_tokens_per_doc=5 tokens=12",  # settings and counts that merely contain the words
    "the key is in the config file",
    "Bearer abc",  # too short to be a key: the word in prose
    "POST /v1/rerank HTTP/1.1 200",
])
def test_what_is_not_a_credential_is_left_alone(line: str) -> None:
    assert redact(line) == line


def record(msg: object, args: object = None, exc_text: str | None = None) -> logging.LogRecord:
    made = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, msg, None, None)
    made.args = args
    made.exc_text = exc_text
    return made


def test_a_record_is_rewritten_keeping_the_shape_its_formatter_unpacks() -> None:
    """uvicorn's access formatter unpacks (client, method, path, version, status): only the strings change."""
    access = record('%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5", "POST", "/v1/rerank?api_key=sk-1234", "1.1", 401))
    assert RedactCredentials().filter(access) is True
    assert access.args == ("127.0.0.1:5", "POST", "/v1/rerank?api_key=***", "1.1", 401)
    assert access.getMessage() == '127.0.0.1:5 - "POST /v1/rerank?api_key=*** HTTP/1.1" 401'

    named = record("%(path)s answered %(status)d", {"path": "/rerank?token=abcdef", "status": 200})
    assert RedactCredentials().filter(named) is True
    assert named.args == {"path": "/rerank?token=***", "status": 200}

    failed = record("request with api_key=sk-in-the-message failed", exc_text="Traceback: Bearer sk-in-the-trace")
    assert RedactCredentials().filter(failed) is True
    assert (failed.msg, failed.exc_text) == ("request with api_key=*** failed", "Traceback: Bearer ***")

    not_text = record(ValueError("token=abcdef"))  # a message that is not a string is passed on as it is
    assert RedactCredentials().filter(not_text) is True and isinstance(not_text.msg, ValueError)


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def access_handler() -> Iterator[Captured]:
    """A handler on uvicorn's access logger, as uvicorn's log config makes one; removed afterwards."""
    logger = logging.getLogger("uvicorn.access")
    handler, level = Captured(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)
    for name in lifecycle._LOGGERS:  # the filters redact_credentials put on other handlers (pytest's own)
        for other in logging.getLogger(name).handlers:
            for added in [f for f in other.filters if isinstance(f, RedactCredentials)]:
                other.removeFilter(added)


def test_the_filter_goes_once_on_every_handler_of_the_servers_loggers(access_handler: Captured) -> None:
    redact_credentials()
    redact_credentials()  # serve may call it again after uvicorn configured its logging
    assert [type(f) for f in access_handler.filters] == [RedactCredentials]
    logging.getLogger("uvicorn.access").info('%s "%s %s"', "127.0.0.1:5", "POST", "/v1/rerank?api_key=sk-1234")
    assert access_handler.lines == ['127.0.0.1:5 "POST /v1/rerank?api_key=***"']


def test_sigterm_starts_one_drain_and_exits_as_an_ordinary_exit() -> None:
    drained = threading.Event()
    calls: list[str] = []

    def drain() -> None:
        calls.append(threading.current_thread().name)
        drained.set()

    server = DrainingServer(uvicorn.Config(app=lambda scope, receive, send: None), drain=drain)
    server.handle_exit(signal.SIGTERM, None)
    assert drained.wait(5) and server.should_exit
    server.handle_exit(signal.SIGTERM, None)  # a second signal starts no second drain
    assert server._captured_signals == []  # uvicorn would re-raise a captured one: the process would die by it
    for thread in threading.enumerate():
        if thread.name == "rerank-drain":
            thread.join(5)
    assert calls == ["rerank-drain"]
