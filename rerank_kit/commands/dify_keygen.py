"""`rerank-kit dify-keygen NAME`: an RSA-4096 key pair for signing .difypkg files (as `dify signature generate`).

The private key signs (`rerank-kit package-dify --sign NAME.private.pem`); the public key goes to the Dify
deployment (THIRD_PARTY_SIGNATURE_VERIFICATION_PUBLIC_KEYS; scripts/install_dify.sh --sign installs it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rerank_kit.commands import dify_signature


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", type=Path, nargs="?", default=Path("rerank-kit-signing"),
                        help="writes NAME.private.pem and NAME.public.pem (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    try:
        pair = dify_signature.generate_key_pair(args.name)
    except (dify_signature.SignatureError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {pair.private} (keep it secret: it signs packages) and {pair.public} (give it to Dify)",
          file=sys.stderr)
    print(f"{pair.private}\n{pair.public}")
    return 0
