"""The FastAPI app: the served models behind the route table (local_server.api.routes), one guard middleware
around every request, the inference thread and the idle unloader living as long as the app."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from local_server import console
from local_server.api.guard import GuardMiddleware
from local_server.api.openapi import publish_schemas
from local_server.api.routes import Serving, add_routes
from local_server.api.traffic import Traffic
from local_server.errors import EXPECTED, answer_error
from local_server.metrics import Metrics
from local_server.registry import ServedModels
from local_server.score_cache import ScoreCache
from local_server.scoring import Scorer
from local_server.settings import Settings
from rerank_kit import __version__


def create_app(settings: Settings, models: ServedModels) -> FastAPI:
    """The app around the served models; `app.state.drain` is what `rerank-kit serve` calls on SIGTERM."""
    cache = ScoreCache.from_settings(settings)
    state = Serving(settings=settings, models=models, scorer=Scorer(models, cache=cache),
                    metrics=Metrics(models.batcher, cache), traffic=Traffic())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        models.batcher.start()
        unloader = asyncio.create_task(models.unload_idle_forever())
        yield
        unloader.cancel()
        await asyncio.to_thread(models.batcher.stop)  # joins the inference thread: never on the event loop
        state.scorer.close()
        if cache is not None:
            await cache.close()

    app = FastAPI(title="rerank-kit", version=__version__, lifespan=lifespan,
                  description="A local reranker (cross-encoders, LLM rerankers, Qwen3-Reranker; several models "
                              "routed by `model`) speaking TEI, Cohere v1/v2, Jina, Ollama and "
                              "OpenAI-compatible rerank dialects.")
    app.state.serving = state
    app.state.drain = functools.partial(state.traffic.drain, batcher=models.batcher)
    app.add_middleware(GuardMiddleware, metrics=state.metrics, traffic=state.traffic,  # type: ignore[arg-type]
                       api_key=settings.api_key.get_secret_value().encode() if settings.api_key else None,
                       public=frozenset(settings.public_routes) | (console.PUBLIC_PATHS if settings.console
                                                                   else frozenset()))
    for expected in EXPECTED:
        app.add_exception_handler(expected, answer_error)
    add_routes(app)
    if settings.console:
        console.add_console(app)
    publish_schemas(app, settings)
    return app
