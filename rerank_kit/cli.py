"""`rerank-kit` console script: one subcommand per module, imported only when it is chosen.

Each command module exposes `add_arguments(parser)` and `run(args) -> int`, so the light commands
(check, tune, package-dify, install-ragflow) never import torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rerank_kit import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("local_server.serve", "start the local reranker HTTP server (one model, or several: --config)"),
    "check": ("rerank_kit.commands.check", "validate a rerank server URL (and key) as the integrations do"),
    "tune": ("rerank_kit.commands.tune", "pick hybrid-score weights from labelled queries (JSONL)"),
    "package-dify": ("rerank_kit.commands.difypkg", "build and validate the Dify plugin packages (model, tool)"),
    "dify-keygen": ("rerank_kit.commands.dify_keygen", "make an RSA-4096 key pair for signing .difypkg files"),
    "verify-dify": ("rerank_kit.commands.verify_dify", "check a .difypkg's signature as Dify's daemon does"),
    "install-ragflow": ("ragflow_integration.installer", "patch a RAGFlow source tree or Docker deployment"),
    "download": ("rerank_kit.commands.download", "fetch models ahead of the first start, with progress (resumable)"),
}


def _usage() -> str:
    lines = [f"usage: rerank-kit {{{','.join(COMMANDS)}}} [options]", "", "commands:"]
    lines += [f"  {name:<16} {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "Run `rerank-kit COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--version":
        print(__version__)
        return 0
    if not argv or argv[0] not in COMMANDS:
        print(_usage(), file=sys.stdout if not argv or argv[0] in ("-h", "--help") else sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    name, rest = argv[0], argv[1:]
    module_name, summary = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"rerank-kit {name}", description=summary)
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(rest)) or 0)


if __name__ == "__main__":
    sys.exit(main())
