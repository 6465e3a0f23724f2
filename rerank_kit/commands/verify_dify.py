"""`rerank-kit verify-dify PKG [--public-key PEM ...]`: check a .difypkg's signature as Dify's daemon does.

Without --public-key it checks against Dify's official key only (what a deployment with
THIRD_PARTY_SIGNATURE_VERIFICATION_ENABLED=false accepts); each --public-key adds a third-party key.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from rerank_kit.commands import dify_signature


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("package", type=Path, help="the .difypkg to check")
    parser.add_argument("--public-key", type=Path, action="append", default=[], metavar="PEM",
                        help="a third-party public key the deployment trusts (repeatable)")


def run(args: argparse.Namespace) -> int:
    try:
        keys = {"Dify's official key": dify_signature.official_public_key(),
                **dify_signature.public_keys(args.public_key)}
        signature = dify_signature.verify(args.package, keys)
    except dify_signature.SignatureError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    signed_at = dt.datetime.fromtimestamp(signature.signed_at, dt.UTC).isoformat()
    print(f"{args.package}: signature OK (key: {signature.key}; signed {signed_at}; "
          f"authorized category: {signature.authorized_category or 'none'})")
    return 0
