"""`rerank-kit check` without a server: an unusable URL exits 2; a timeout reads "timed out" in the report."""

from __future__ import annotations

import pytest

from rerank_kit.cli import main
from rerank_kit.client import CheckReport
from rerank_kit.commands.check import report_lines
from rerank_kit.errors import RerankTimeoutError


def check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["check", *argv])
    return code, capsys.readouterr().out


def test_unusable_url_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = check(capsys, "http://")
    assert code == 2 and out.startswith("FAILED: the server URL 'http://' has no host")


def test_a_timeout_reads_timed_out_not_unreachable() -> None:
    error = RerankTimeoutError("no complete answer within 30s", url="http://rr.test:8086/rerank", hint="raise it")
    lines = report_lines(CheckReport(url="http://rr.test:8086", error=error), key_sent=False)
    assert "  reachable   timed out" in lines and lines[-1].startswith("FAILED: no complete answer within 30s")
