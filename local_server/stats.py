"""`GET /stats`: what the console's Overview and Thresholds show, as JSON.

One source with `/metrics`: the live figures are read from the Prometheus registry's own samples (requests by
route and status, latency buckets, pairs, queue), and the per-model tallies kept here are published into that
registry too (`rerank_model_*`). Rates and latency percentiles are over a recent window, the difference
between now and the snapshot taken about `WINDOW_S` before (a Prometheus `rate()` over the last polls).
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from local_server.metrics import Metrics
from local_server.registry import ServedModel, ServedModels
from local_server.sketch import ScoreSketch

WINDOW_S = 10.0


@dataclass
class ModelTally:
    """One model's scored requests and documents, and its recent scores (no text)."""

    sketch: ScoreSketch
    requests: int = 0
    documents: int = 0


@dataclass(frozen=True)
class _Snapshot:
    at: float
    requests: float  # answered requests on the scoring routes
    pairs: float  # pairs run in forward passes
    buckets: dict[float, float]  # latency histogram of the scoring routes: upper bound -> cumulative count
    per_model: dict[str, int] = field(default_factory=dict)


class _ModelCollector(Collector):
    """The per-model tallies, in /metrics."""

    def __init__(self, tallies: dict[str, ModelTally]) -> None:
        self._tallies = tallies

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("rerank_model_requests", "Requests scored, by model.", labels=["model"])
        documents = CounterMetricFamily("rerank_model_documents", "Documents scored, by model.", labels=["model"])
        for name, tally in self._tallies.items():
            requests.add_metric([name], tally.requests)
            documents.add_metric([name], tally.documents)
        yield requests
        yield documents


class Stats:
    """The per-model tallies (fed by every scoring route) and the builder of `/stats`' body."""

    def __init__(self, metrics: Metrics, models: ServedModels, *, scoring_routes: Iterable[str],
                 sketch_size: int = 4096, clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics, self.models, self.clock = metrics, models, clock
        self.scoring_routes = frozenset(scoring_routes)
        self.tallies = {model.name: ModelTally(ScoreSketch(sketch_size)) for model in models.models}
        self.started = clock()
        self._history: deque[_Snapshot] = deque([_Snapshot(self.started, 0, 0, {})], maxlen=512)
        metrics.registry.register(_ModelCollector(self.tallies))

    def record(self, model: str, scores: np.ndarray, *, calibrated: bool) -> None:
        """One answered request; its scores join the model's sketch only when calibrated (raw logits are not
        what a score_threshold compares)."""
        tally = self.tallies[model]
        tally.requests += 1
        tally.documents += len(scores)
        if calibrated:
            tally.sketch.add(scores)

    def build(self) -> dict[str, Any]:
        """The body of `GET /stats`; one call is one snapshot of the rate window."""
        samples = _samples(self.metrics)
        now = _Snapshot(self.clock(), *self._scoring(samples), {n: t.requests for n, t in self.tallies.items()})
        self._history.append(now)
        while len(self._history) > 2 and self._history[1].at <= now.at - WINDOW_S:
            self._history.popleft()
        base = self._history[0]
        seconds = max(now.at - base.at, 1e-9)
        delta = {bound: count - base.buckets.get(bound, 0) for bound, count in now.buckets.items()}
        return {
            "uptime_s": round(now.at - self.started, 1), "window_s": round(seconds, 1),
            "requests_per_s": round((now.requests - base.requests) / seconds, 3),
            "pairs_per_s": round((now.pairs - base.pairs) / seconds, 1),
            "latency_ms": {f"p{int(q * 100)}": _quantile_ms(delta, q) for q in (0.5, 0.95)},
            "queue_pairs": int(_total(samples, "rerank_queue_pairs")),
            "requests_total": int(_total(samples, "rerank_requests_total")),
            "errors": _errors(samples),
            "cache": _cache(samples),
            "models": [self._model(model, (now.per_model[model.name] - base.per_model.get(model.name, 0)) / seconds)
                       for model in self.models.models],
        }

    def _scoring(self, samples: dict[str, list[Any]]) -> tuple[float, float, dict[float, float]]:
        requests = sum(s.value for s in samples["rerank_requests_total"] if s.labels["route"] in self.scoring_routes)
        buckets: dict[float, float] = defaultdict(float)
        for sample in samples["rerank_request_seconds_bucket"]:
            if sample.labels["route"] in self.scoring_routes:
                buckets[float(sample.labels["le"])] += sample.value
        return requests, _total(samples, "rerank_batch_pairs_total"), dict(buckets)

    def _model(self, model: ServedModel, requests_per_s: float) -> dict[str, Any]:
        engine, own, tally = model.engine, model.settings, self.tallies[model.name]
        state = "loaded" if engine else ("unloaded" if model.lane is not None else "lazy")
        return {
            "name": model.name, "family": model.family, "state": state,
            "backend": engine.backend.name if engine else own.backend,
            "precision": engine.dtype if engine else None, "device": engine.device if engine else own.device,
            "max_input_length": own.max_length, "active": model.active,
            "requests": tally.requests, "documents": tally.documents, "requests_per_s": round(requests_per_s, 3),
            "scores": tally.sketch.summary(),
        }


def _samples(metrics: Metrics) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = defaultdict(list)
    for family in metrics.registry.collect():
        for sample in family.samples:
            found[sample.name].append(sample)
    return found


def _total(samples: dict[str, list[Any]], name: str) -> float:
    return sum(sample.value for sample in samples[name])


def _errors(samples: dict[str, list[Any]]) -> dict[str, int]:
    """Answers of status 400 and above since start, by status (499: the client went away)."""
    found: dict[str, int] = defaultdict(int)
    for sample in samples["rerank_requests_total"]:
        if int(sample.labels["status"]) >= 400:
            found[sample.labels["status"]] += int(sample.value)
    return dict(sorted(found.items()))


def _cache(samples: dict[str, list[Any]]) -> dict[str, float] | None:
    """The score cache's counters since start (None when it is off): documents answered from it, scored by the
    model, awaited from another request; what its memory tier holds."""
    if not samples["rerank_cache_entries"]:
        return None
    hits, misses = _total(samples, "rerank_cache_hits_total"), _total(samples, "rerank_cache_misses_total")
    joins = _total(samples, "rerank_cache_joins_total")
    answered = hits + misses + joins
    return {"hits": int(hits), "misses": int(misses), "joins": int(joins),
            "hit_ratio": round((hits + joins) / answered, 4) if answered else None,
            "entries": int(_total(samples, "rerank_cache_entries")),
            "bytes": int(_total(samples, "rerank_cache_bytes")),
            "shared_errors": int(_total(samples, "rerank_cache_shared_errors_total"))}


def _quantile_ms(buckets: dict[float, float], q: float) -> float | None:
    """Prometheus' histogram_quantile: linear within the bucket that holds the q-th observation."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0
    if total <= 0:
        return None
    target, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= target:
            if bound == float("inf"):
                return round(lower * 1000, 1)
            share = (target - below) / (count - below) if count > below else 1.0
            return round((lower + (bound - lower) * share) * 1000, 1)
        lower, below = bound, count
    return round(lower * 1000, 1)
