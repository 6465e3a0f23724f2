"""Prometheus metrics: request counts and latency per route, documents and tokens scored, batcher and score
cache state."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from local_server.batcher import Batcher
from local_server.score_cache import ScoreCache

# The batcher's counters: metric name (without `_total`) -> (BatchStats field, help text).
_BATCHER_COUNTERS = {
    "rerank_batches": ("batches", "Forward passes run."),
    "rerank_batch_pairs": ("pairs", "Pairs scored in forward passes."),
    "rerank_batch_real_tokens": ("real_tokens", "Real tokens in forward passes."),
    "rerank_batch_padded_tokens": ("padded_tokens", "Padded tokens in forward passes."),
    "rerank_inference_seconds": ("busy_seconds", "Seconds spent in forward passes."),
    "rerank_abandoned_pairs": ("abandoned_pairs", "Pairs dropped because their client went away."),
    "rerank_failed_batches": ("failed_batches", "Forward passes that raised (their requests got 500)."),
    "rerank_oom_splits": ("oom_splits", "Batches retried in halves after running out of memory."),
}


class _BatcherCollector(Collector):
    def __init__(self, batcher: Batcher) -> None:
        self._batcher = batcher

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("rerank_queue_pairs", "Pairs waiting for the inference thread.",
                                value=self._batcher.queued_pairs)
        stats = self._batcher.stats
        for name, (field_name, help_text) in _BATCHER_COUNTERS.items():
            yield CounterMetricFamily(name, help_text, value=getattr(stats, field_name))


class _CacheCollector(Collector):
    """The score cache's tiers: where documents were answered from, and what the memory tier holds."""

    def __init__(self, cache: ScoreCache) -> None:
        self._cache = cache

    def collect(self) -> Iterator[Metric]:
        cache = self._cache
        hits = CounterMetricFamily("rerank_cache_hits", "Documents answered from the score cache, by tier.",
                                   labels=["tier"])
        hits.add_metric(["memory"], cache.memory.stats.hits)
        hits.add_metric(["shared"], cache.shared.stats.hits if cache.shared else 0)
        yield hits
        yield CounterMetricFamily("rerank_cache_misses", "Documents the model scored (not in the cache).",
                                  value=cache.stats.misses)
        yield CounterMetricFamily("rerank_cache_joins", "Documents awaited from another request's scoring of "
                                  "the same pair (single flight).", value=cache.stats.joins)
        yield CounterMetricFamily("rerank_cache_evictions", "Entries evicted from the memory tier "
                                  "(RERANK_CACHE_BYTES).", value=cache.memory.stats.evictions)
        yield CounterMetricFamily("rerank_cache_shared_errors", "Failed Redis calls (answered from the model).",
                                  value=cache.shared.stats.errors if cache.shared else 0)
        yield GaugeMetricFamily("rerank_cache_entries", "Entries in the memory tier.", value=len(cache.memory))
        yield GaugeMetricFamily("rerank_cache_bytes", "Memory the memory tier's entries take (estimated).",
                                value=cache.memory.bytes)


class Metrics:
    """One registry per app, so several apps in one process never collide."""

    def __init__(self, batcher: Batcher, cache: ScoreCache | None = None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("rerank_requests", "HTTP requests by route and status (499: the client went away).",
                                ["route", "status"],
                                registry=self.registry)
        self.latency = Histogram("rerank_request_seconds", "HTTP request latency by route.", ["route"],
                                 registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.documents = Counter("rerank_documents", "Documents scored.", registry=self.registry)
        self.tokens = Counter("rerank_tokens", "Tokens scored (query + document pairs).", registry=self.registry)
        self.registry.register(_BatcherCollector(batcher))
        if cache is not None:
            self.registry.register(_CacheCollector(cache))

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def count_scored(self, documents: int, tokens: int) -> None:
        self.documents.inc(documents)
        self.tokens.inc(tokens)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
