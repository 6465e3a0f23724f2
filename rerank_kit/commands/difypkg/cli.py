"""`rerank-kit package-dify [--model|--tool] [-o dist/] [--check FILE] [--offline] [--sign KEY.pem]`."""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

from rerank_kit.commands import dify_signature, wheels
from rerank_kit.commands.difypkg.archive import MAX_UNCOMPRESSED_BYTES
from rerank_kit.commands.difypkg.build import build, inspect
from rerank_kit.commands.difypkg.errors import PackageError
from rerank_kit.commands.difypkg.root import MODEL, PLUGINS, TOOL
from rerank_kit.commands.vendor import REPO_ROOT


def _platform(tag: str) -> wheels.Platform:
    try:
        return wheels.Platform.parse(tag)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=Path, default=Path("dist"),
                        help="folder for <name>-<version>.difypkg (default: dist/)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model", dest="plugin", action="store_const", const=MODEL.name,
                       help="build only the model-provider plugin (default: both)")
    which.add_argument("--tool", dest="plugin", action="store_const", const=TOOL.name,
                       help="build only the workflow tool plugin (default: both)")
    parser.add_argument("--root", type=Path, default=REPO_ROOT,
                        help="the rerank-kit checkout holding the plugins' sources (default: this one)")
    parser.add_argument("--sign", type=Path, metavar="KEY.pem",
                        help="sign the packages with this RSA private key (from `rerank-kit dify-keygen`)")
    parser.add_argument("--check", type=Path, metavar="FILE",
                        help="validate an existing .difypkg instead of building one")
    parser.add_argument("--max-size", type=int, default=MAX_UNCOMPRESSED_BYTES,
                        help="size cap in bytes (Dify's PLUGIN_MAX_PACKAGE_SIZE, default 50 MiB)")
    parser.add_argument("--offline", action="store_true",
                        help="carry the requirements as wheels, for a Dify that reaches no package index")
    parser.add_argument("--platform", type=_platform, action="append", default=[], metavar="PLATFORM",
                        help="with --offline, repeatable: a wheel target like manylinux_2_28_x86_64 (default: "
                             f"manylinux_2_{wheels.DEFAULT_GLIBC_MINOR}_<machine> for each manifest meta.arch)")
    parser.add_argument("--wheel-cache", type=Path, default=wheels.default_cache(), metavar="DIR",
                        help="with --offline: where downloaded wheels are kept (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    if args.platform and not args.offline:
        print("error: --platform needs --offline", file=sys.stderr)
        return 2
    offline = (wheels.Offline(tuple(args.platform), args.wheel_cache, lambda line: print(line, file=sys.stderr))
               if args.offline else None)
    try:
        sign_key = dify_signature.load_private_key(args.sign) if args.sign else None
        packages = ([inspect(args.check, args.max_size)] if args.check else
                    [build(args.output, args.root, max_size=args.max_size, offline=offline, plugin=plugin,
                           sign_key=sign_key) for plugin in PLUGINS if args.plugin in (None, plugin.name)])
    except (PackageError, wheels.WheelError, dify_signature.SignatureError, OSError, zipfile.BadZipFile) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    mib = wheels.MIB
    for package in packages:
        size = package.path.stat().st_size
        print(f"{package.path.name}: {size} bytes ({size / mib:.1f} MiB), {package.uncompressed} bytes uncompressed; "
              f"limit {args.max_size} ({args.max_size / mib:.1f} MiB)" + (f"; signed with {args.sign}" if sign_key
                                                                           else ""), file=sys.stderr)
        print(package.path)
        print(package.identity)
    return 0
