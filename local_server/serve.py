"""`rerank-kit serve`: load the model once, then serve every dialect with uvicorn."""

from __future__ import annotations

import argparse
import logging
import sys

from local_server.settings import Settings

# Flags override the RERANK_* environment; secrets (the API key) are read from the environment only,
# so they never show in a process list.
_FLAGS: dict[str, tuple[type, str]] = {
    "model": (str, "hub id or local folder of the cross-encoder (RERANK_MODEL)"),
    "host": (str, "bind address (RERANK_HOST, default 0.0.0.0)"),
    "port": (int, "port (RERANK_PORT, default 8086)"),
    "device": (str, "auto | cpu | cuda | cuda:N | mps (RERANK_DEVICE)"),
    "max_length": (int, "max tokens per (query, document) pair (RERANK_MAX_LENGTH, default 512)"),
    "max_docs": (int, "max documents per request (RERANK_MAX_DOCS, default 1000)"),
    "backend": (str, "torch | onnx (RERANK_BACKEND)"),
    "log_level": (str, "debug | info | warning | error (RERANK_LOG_LEVEL)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "Every setting is also an environment variable RERANK_<NAME>; see docs/server.md."
    for name, (kind, help_text) in _FLAGS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, help=help_text)


def run(args: argparse.Namespace) -> int:
    overrides = {name: value for name in _FLAGS if (value := getattr(args, name)) is not None}
    settings = Settings(**overrides)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("rerank_kit.serve")

    import uvicorn

    from local_server.app import create_app
    from local_server.engine import ModelLoadError, RerankEngine

    try:
        engine = RerankEngine.load(settings)
    except ModelLoadError as exc:
        print(f"rerank-kit: {exc}", file=sys.stderr)
        return 2
    log.info("serving %s on http://%s:%d (device %s, %s, %s backend, API key %s)", settings.model_id,
             settings.host, settings.port, engine.device, engine.dtype, settings.backend,
             "required" if settings.api_key else "not required")
    uvicorn.run(create_app(settings, engine), host=settings.host, port=settings.port,
                log_level=settings.log_level.lower(), timeout_graceful_shutdown=5)
    return 0
