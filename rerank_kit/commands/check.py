"""`rerank-kit check URL [--api-key KEY] [--model M]`: validate a rerank server as the integrations do.

Prints the client's CheckReport (reachable? which server, called how? auth accepted? a reranker? which
model and limits?) and exits 0 only when the server is usable.
"""

from __future__ import annotations

import argparse
import os

from rerank_kit.client import CheckReport, RerankClient
from rerank_kit.errors import AuthError, RerankError, RerankTimeoutError, TransportError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the server's URL, e.g. http://localhost:8086 (…/v1, …/rerank also work)")
    parser.add_argument("--api-key", default=os.environ.get("RERANK_API_KEY"),
                        help="Bearer key (default: $RERANK_API_KEY; none sends no Authorization header)")
    parser.add_argument("--model", help="the model name an integration will send; checked against the server's")
    parser.add_argument("--timeout", type=float, default=30.0, help="read timeout in seconds (default 30)")
    parser.add_argument("--retries", type=int, default=1, help="retries on connect errors, 429 and 5xx (default 1)")


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def _auth_line(report: CheckReport, key_sent: bool) -> str:
    if isinstance(report.error, AuthError):
        return "rejected" if key_sent else "required, no key sent"
    if report.ok:
        return "accepted" if key_sent else "not required"
    return "not reached"


def _reachable(report: CheckReport) -> str:
    if isinstance(report.error, RerankTimeoutError):
        return "timed out"
    return "no" if isinstance(report.error, TransportError) else "yes"


def report_lines(report: CheckReport, *, key_sent: bool) -> list[str]:
    """The report as aligned `name  value` lines, then one OK/FAILED line."""
    rows = [
        ("reachable", _reachable(report)),
        ("server", report.server or "unknown"),
        ("wire", report.wire.description if report.wire else "not established"),
        ("auth", _auth_line(report, key_sent)),
        ("reranker", _yes_no(report.is_reranker)),
        ("model", report.model or ", ".join(report.served_models) or "unknown"),
        ("served", ", ".join(report.served_models) or "not listed"),
        ("max docs", str(report.max_docs or "not advertised")),
        ("max length", f"{report.max_input_length} tokens" if report.max_input_length else "not advertised"),
    ]
    if report.probe_score is not None:
        rows.append(("probe", f"1 document scored {report.probe_score:.4f} in {report.latency_ms or 0:.0f} ms, "
                              f"{report.probe_tokens or 0} tokens"))
    lines = [f"  {name:<11} {value}" for name, value in rows]
    lines.append(report.message if report.ok else f"FAILED: {report.message}")
    return lines


def run(args: argparse.Namespace) -> int:
    try:
        client = RerankClient(args.url, args.api_key, args.model, timeout=args.timeout, max_retries=args.retries)
    except RerankError as exc:
        print(f"FAILED: {exc}")
        return 2
    with client:
        report = client.check()
    print(f"rerank-kit check {report.url}")
    print("\n".join(report_lines(report, key_sent=bool(args.api_key and args.api_key.strip()))))
    return 0 if report.ok else 1
