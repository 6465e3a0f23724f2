"""The served models: routing a request's `model` to one, loading it (at start or on first use) and
unloading it when idle.

Every model has its own engine (tokenizer, family, backend) and its own lane in the one batcher, whose
inference thread takes the lanes in turn. `in_use` is the one way to a model's engine: it loads the model
(in a worker thread) when needed and marks it in use until released. The rest runs on the event loop, so
a model's count of requests in progress needs no lock: it is unloaded only when that count is zero and it
has been idle for `idle_unload_s`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import numpy as np

from local_server.backends import load_backend, stay_offline
from local_server.backends.device import resolve_device
from local_server.batcher import Batcher, Lane
from local_server.engine import EncodedPair, RerankEngine, batch_tokens_for
from local_server.families import read_model_facts
from local_server.settings import ModelSpec, Settings
from rerank_kit import __version__
from rerank_kit.names import pick
from rerank_kit.protocol import ServerInfo

log = logging.getLogger(__name__)

class ModelNotFoundError(LookupError):
    """The request names a model this server does not serve (HTTP 404, naming the served ones)."""

    def __init__(self, name: str, served: Sequence[str]) -> None:
        super().__init__(f"model {name!r} is not served here; served models: {', '.join(served)}")


def _not_loaded(pairs: Sequence[EncodedPair]) -> np.ndarray:
    raise RuntimeError("the model was unloaded while its pairs were queued")


@dataclass(eq=False)
class ServedModel:
    """One model: its name, its settings (the server's with its spec on top), and once loaded its engine."""

    name: str
    settings: Settings
    family: str  # its family's name, known before it loads (set, or detected from its config.json at start)
    aliases: frozenset[str] = frozenset()
    engine: RerankEngine | None = None
    lane: Lane | None = None
    active: int = 0  # requests in progress (event loop only)
    last_used: float = field(default_factory=time.monotonic)
    _loading: asyncio.Lock = field(default_factory=asyncio.Lock)


class ServedModels:
    """Every served model, in config order (the first is the default), sharing one batcher."""

    def __init__(self, settings: Settings, models: Sequence[ServedModel], *, strict: bool) -> None:
        self.models = list(models)
        self.strict = strict  # False for the single RERANK_MODEL form: any name reaches it, as before
        self.on_unload: list[Callable[[str], None]] = []  # told a model's name when it is unloaded or reloaded
        self.batcher = Batcher(max_batch_size=settings.max_batch_size, max_wait_ms=settings.max_wait_ms,
                               max_queue_pairs=settings.max_queue_pairs)
        for model in self.models:
            if model.engine is not None:
                self._attach(model, model.engine)

    @classmethod
    def load(cls, settings: Settings) -> ServedModels:
        """The models RERANK_CONFIG (or RERANK_MODEL) names, each loaded now unless it loads lazily;
        ModelLoadError or ConfigFileError when one cannot be."""
        stay_offline(settings)  # before a hub id's config.json is looked up to detect its family
        models = [cls._served(settings, spec) for spec in settings.model_specs()]
        for model in models:
            if not model.settings.lazy_load:
                model.engine = _load_engine(model.settings)
        return cls(settings, models, strict=settings.config is not None)

    @classmethod
    def of(cls, settings: Settings, engine: RerankEngine) -> ServedModels:
        """One already loaded model, served under `settings.model_id`."""
        served = ServedModel(settings.model_id, settings, engine.family.name, engine=engine)
        return cls(settings, [served], strict=False)

    @staticmethod
    def _served(settings: Settings, spec: ModelSpec) -> ServedModel:
        own = settings.for_model(spec)
        return ServedModel(spec.name, own, own.family or read_model_facts(spec.path).family,
                           aliases=frozenset({spec.path}))

    @property
    def default(self) -> ServedModel:
        return self.models[0]

    @property
    def names(self) -> list[str]:
        return [model.name for model in self.models]

    def get(self, name: str | None) -> ServedModel:
        """The model a request names (absent or empty: the default; the rule: rerank_kit.names.pick);
        ModelNotFoundError when unknown."""
        if not name:
            return self.default
        if (picked := pick(name, [(model.name, model.aliases) for model in self.models])) is not None:
            return next(model for model in self.models if model.name == picked)
        if not self.strict and len(self.models) == 1:
            return self.default
        raise ModelNotFoundError(name, self.names)

    @asynccontextmanager
    async def in_use(self, model: ServedModel) -> AsyncIterator[tuple[RerankEngine, Lane]]:
        """The model's engine and batcher lane, loading it first (in a worker thread) when it is not loaded.
        While held, the model is in use and never unloaded; on release its idle time starts again."""
        model.active += 1
        try:
            model.last_used = time.monotonic()
            if model.engine is None:
                async with model._loading:
                    if model.engine is None:
                        log.info("loading model %s", model.name)
                        self._attach(model, await asyncio.to_thread(_load_engine, model.settings))
            assert model.engine is not None and model.lane is not None
            yield model.engine, model.lane
        finally:
            model.active -= 1
            model.last_used = time.monotonic()

    def info(self, settings: Settings, *, documents_per_request: int) -> ServerInfo:
        """`GET /info`: TEI's fields for the default model (Dify's and RAGFlow's TEI factories read them), this
        server's limits and every served model's name."""
        default = self.default
        own, engine = default.settings, default.engine  # engine None: a lazy model not loaded yet
        return ServerInfo(
            model_id=default.name, model_dtype=engine.dtype if engine else "float32",
            model_type={"reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}},
            max_concurrent_requests=settings.max_queue_pairs, max_input_length=own.max_length,
            max_batch_tokens=engine.batch_tokens if engine else batch_tokens_for(own, resolve_device(own.device)),
            max_client_batch_size=documents_per_request, version=__version__, server="rerank-kit",
            max_docs=documents_per_request, query_max_length=own.effective_query_max_length,
            device=engine.device if engine else None, score_transform="sigmoid", kind=default.family,
            models=self.names, backend=engine.backend.name if engine else None,
            backend_note=engine.note if engine else None)

    def _attach(self, model: ServedModel, engine: RerankEngine) -> None:
        model.engine = engine
        if model.lane is None:
            model.lane = self.batcher.add_lane(model.name, engine.logits, max_batch_tokens=engine.batch_tokens,
                                               decoder=engine.family.decoder)
        else:  # loaded again after an idle unload
            model.lane.run_batch = engine.logits
            self._unloaded(model.name)

    def unload_idle(self, now: float | None = None) -> list[str]:
        """Unload every model idle past its `idle_unload_s` with no request in progress; their names."""
        now = time.monotonic() if now is None else now
        unloaded = []
        for model in self.models:
            idle_s = model.settings.idle_unload_s
            if model.engine is None or idle_s is None or model.active or now - model.last_used < idle_s:
                continue
            model.engine = None
            if model.lane is not None:
                model.lane.run_batch = _not_loaded  # drops the last reference to the model
            unloaded.append(model.name)
            self._unloaded(model.name)
            log.info("unloaded model %s after %.0f s idle", model.name, now - model.last_used)
        if unloaded:
            gc.collect()  # a model's modules hold reference cycles: free its memory now, not at some later pass
        return unloaded

    def _unloaded(self, name: str) -> None:
        for listener in self.on_unload:
            listener(name)

    async def unload_idle_forever(self) -> None:
        """The app's background task when some model has idle_unload_s."""
        periods = [m.settings.idle_unload_s for m in self.models if m.settings.idle_unload_s]
        if not periods:
            return
        while True:
            await asyncio.sleep(max(0.05, min(periods) / 4))
            self.unload_idle()


def _load_engine(settings: Settings) -> RerankEngine:
    return RerankEngine(load_backend(settings), settings)
