"""GET /stats' body (local_server/stats.py) over a stand-in batcher and models: read from the same registry /metrics
renders, rates and latency percentiles over the recent window, errors by status, each model's state and tallies,
and calibrated scores only in the sketch. Milliseconds each."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from local_server.metrics import Metrics
from local_server.registry import ServedModel, ServedModels
from local_server.settings import Settings
from local_server.stats import Stats
from tests.unit.local_server.test_metrics import samples, stand_in_batcher

SCORING = ("/rerank", "/v1/rerank")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def served(*names: str) -> ServedModels:
    settings = Settings(model="tiny", offline=True, backend="onnx")
    return ServedModels(settings, [ServedModel(name, settings, "cross-encoder") for name in names], strict=True)


def make(*names: str) -> tuple[Stats, Metrics, Clock]:
    metrics, clock = Metrics(stand_in_batcher(queued_pairs=7, pairs=0)), Clock()  # type: ignore[arg-type]
    return Stats(metrics, served(*names), scoring_routes=SCORING, clock=clock), metrics, clock


def test_rates_and_latency_are_over_the_window_and_only_the_scoring_routes() -> None:
    stats, metrics, clock = make("a")
    stats.build()
    for seconds in (0.004, 0.02, 0.02, 0.2):
        metrics.observe("/v1/rerank", 200, seconds)
    metrics.observe("/health", 200, 9.0)  # not a scoring route: no effect on rates or latency
    metrics.observe("/v1/rerank", 422, 0.001)
    metrics.observe("/stats", 401, 0.001)
    clock.now += 5
    body = stats.build()
    assert body["requests_per_s"] == 1.0 and body["window_s"] == 5.0  # 5 scoring requests in 5 s
    # histogram_quantile: the 2.5th of 5 answers lies in (10, 25] ms, which holds the 3rd and 4th: a quarter in
    assert body["latency_ms"]["p50"] == 13.8
    assert 100 < body["latency_ms"]["p95"] <= 250
    assert body["errors"] == {"401": 1, "422": 1} and body["queue_pairs"] == 7 and body["requests_total"] == 7
    clock.now += 60  # a window with nothing in it
    stats.build()
    clock.now += 2
    quiet = stats.build()
    assert quiet["requests_per_s"] == 0 and quiet["latency_ms"] == {"p50": None, "p95": None}


def test_each_model_reports_its_state_tallies_and_recent_scores() -> None:
    stats, _, _ = make("a", "b", "c")
    a, b, _ = stats.models.models
    a.engine = SimpleNamespace(backend=SimpleNamespace(name="onnx"), dtype="int8", device="cpu")  # type: ignore[assignment]
    b.lane = object()  # type: ignore[assignment]  # loaded once, then unloaded when idle
    stats.record("a", np.array([0.9, 0.1, 0.6]), calibrated=True)
    stats.record("a", np.array([4.2, -3.0]), calibrated=False)  # raw logits: counted, never in the sketch
    models = {m["name"]: m for m in stats.build()["models"]}
    assert [models[n]["state"] for n in "abc"] == ["loaded", "unloaded", "lazy"]
    assert models["a"] | {"scores": None} == {
        "name": "a", "family": "cross-encoder", "state": "loaded", "backend": "onnx", "precision": "int8",
        "device": "cpu", "max_input_length": 512, "active": 0, "requests": 2, "documents": 5,
        "requests_per_s": models["a"]["requests_per_s"], "scores": None}
    assert models["a"]["scores"]["count"] == 3 and models["a"]["scores"]["keeps"][50] == round(2 / 3, 6)
    assert models["c"]["backend"] == "onnx" and models["c"]["precision"] is None


def test_the_model_tallies_are_in_metrics_too() -> None:
    stats, metrics, _ = make("a", "b")
    stats.record("b", np.array([0.5, 0.5]), calibrated=True)
    scraped = samples(metrics)
    assert scraped[("rerank_model_requests_total", (("model", "b"),))] == 1
    assert scraped[("rerank_model_documents_total", (("model", "b"),))] == 2
    assert scraped[("rerank_model_documents_total", (("model", "a"),))] == 0


def test_the_score_cache_counters_come_from_the_registry_and_are_none_when_it_is_off() -> None:
    from local_server.score_cache import ScoreCache

    stats, _, _ = make("a")
    assert stats.build()["cache"] is None  # RERANK_CACHE_BYTES=0: no cache metrics
    cache = ScoreCache.from_settings(Settings(model="tiny"))
    assert cache is not None
    cache.memory.put("a", b"k" * 16, (1.5, 12))
    cache.memory.get(b"k" * 16)
    cache.stats.misses, cache.stats.joins = 2, 1
    metrics = Metrics(stand_in_batcher(queued_pairs=0, pairs=0), cache)  # type: ignore[arg-type]
    found = Stats(metrics, served("a"), scoring_routes=SCORING).build()["cache"]
    assert found == {"hits": 1, "misses": 2, "joins": 1, "hit_ratio": 0.5, "entries": 1, "bytes": cache.memory.bytes,
                     "shared_errors": 0}
