"""`rerank-kit serve`: load the models once (or on first use), then serve every dialect with uvicorn."""

from __future__ import annotations

import argparse
import logging
import sys

from local_server.paste import console_url, paste_guide
from local_server.settings import Settings

# Flags override the RERANK_* environment; secrets (the API key) are read from the environment only,
# so they never show in a process list.
_FLAGS: dict[str, tuple[type, str]] = {
    "config": (str, "YAML file listing the models to serve (RERANK_CONFIG; see docs/server.md)"),
    "model": (str, "hub id or local folder of the reranker, when serving one model (RERANK_MODEL)"),
    "host": (str, "bind address (RERANK_HOST, default 0.0.0.0 so that Dify/RAGFlow in Docker reach it)"),
    "port": (int, "port (RERANK_PORT, default 8086)"),
    "device": (str, "auto | cpu | cuda | cuda:N | mps (RERANK_DEVICE)"),
    "max_length": (int, "max tokens per (query, document) pair (RERANK_MAX_LENGTH, default 512)"),
    "max_docs": (int, "max documents per request (RERANK_MAX_DOCS, default 1000)"),
    "backend": (str, "auto | torch | onnx (RERANK_BACKEND, default auto: ONNX Runtime on the CPU when exact)"),
    "log_level": (str, "debug | info | warning | error (RERANK_LOG_LEVEL)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "Every setting is also an environment variable RERANK_<NAME>; see docs/server.md."
    for name, (parse, help_text) in _FLAGS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=parse, help=help_text)


def run(args: argparse.Namespace) -> int:
    overrides = {name: value for name in _FLAGS if (value := getattr(args, name)) is not None}
    settings = Settings(**overrides)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger(__name__)

    import uvicorn

    from local_server.app import create_app
    from local_server.backends import ModelLoadError
    from local_server.expectations import log_expectation
    from local_server.lifecycle import DrainingServer, redact_credentials
    from local_server.registry import ServedModels
    from local_server.settings import ConfigFileError

    try:
        models = ServedModels.load(settings)
    except (ModelLoadError, ConfigFileError) as exc:
        print(f"rerank-kit: {exc}", file=sys.stderr)
        return 2
    for model in models.models:
        engine = model.engine
        log.info("model %s: %s, %s", model.name, model.family,
                 f"device {engine.device}, {engine.dtype}, {engine.backend.name} backend" if engine
                 else "loaded on its first request")
        if engine:
            log_expectation(engine, model.name)
    log.info("serving %s on http://%s:%d (API key %s)", ", ".join(models.names), settings.host, settings.port,
             "required" if settings.api_key else "not required")
    if not settings.api_key and not _is_loopback(settings.host):
        log.warning("listening on %s without an API key: anyone who can reach this machine can use the reranker. "
                    "Set RERANK_API_KEY, or RERANK_HOST=127.0.0.1 when Dify/RAGFlow do not run in Docker "
                    "(docs/server.md, Exposure)", settings.host)
    print(paste_guide(settings.host, settings.port, api_key_set=bool(settings.api_key), models=models.names),
          flush=True)
    if settings.console:
        print(f"Console (models, what to paste, try, thresholds): {console_url(settings.host, settings.port)}",
              flush=True)
    app = create_app(settings, models)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                            timeout_graceful_shutdown=settings.drain_seconds + _ANSWER_SECONDS)
    redact_credentials()  # after uvicorn configured its loggers
    server = DrainingServer(config, drain=lambda: app.state.drain(settings.drain_seconds))
    server.run()
    return 0


# After the drain deadline, the time left for the 503s to be written before uvicorn cancels what remains.
_ANSWER_SECONDS = 5.0


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"
