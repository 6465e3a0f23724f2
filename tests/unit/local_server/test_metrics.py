"""/metrics (local_server/metrics.py) on its own, over a stand-in batcher: requests counted by route and status,
latency in its buckets, documents and tokens scored, the batcher's queue and counters read at each scrape, and
one registry per app. Milliseconds each."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client.parser import text_string_to_metric_families

from local_server.batcher import BatchStats
from local_server.metrics import Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one scrape: (name, sorted labels) -> value."""
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body.decode()) for sample in family.samples}


def stand_in_batcher(queued_pairs: int = 0, **stats: float) -> SimpleNamespace:
    """What the collector reads of a Batcher: its queued pairs and its stats."""
    return SimpleNamespace(queued_pairs=queued_pairs, stats=BatchStats(**stats))


def test_requests_are_counted_by_route_and_status_with_their_latency() -> None:
    metrics = Metrics(stand_in_batcher())  # type: ignore[arg-type]
    metrics.observe("/v1/rerank", 200, 0.02)
    metrics.observe("/v1/rerank", 200, 0.02)
    metrics.observe("/v1/rerank", 499, 0.4)
    metrics.observe("/rerank", 422, 0.001)
    got = samples(metrics)
    assert got[("rerank_requests_total", (("route", "/v1/rerank"), ("status", "200")))] == 2
    assert got[("rerank_requests_total", (("route", "/v1/rerank"), ("status", "499")))] == 1
    assert got[("rerank_requests_total", (("route", "/rerank"), ("status", "422")))] == 1
    assert ("rerank_requests_total", (("route", "/rerank"), ("status", "200"))) not in got
    latency = {labels: value for (name, labels), value in got.items() if name == "rerank_request_seconds_bucket"
               and ("route", "/v1/rerank") in labels}
    assert latency[(("le", "0.01"), ("route", "/v1/rerank"))] == 0
    assert latency[(("le", "0.025"), ("route", "/v1/rerank"))] == 2
    assert latency[(("le", "0.25"), ("route", "/v1/rerank"))] == 2
    assert latency[(("le", "0.5"), ("route", "/v1/rerank"))] == 3
    assert got[("rerank_request_seconds_count", (("route", "/v1/rerank"),))] == 3
    assert abs(got[("rerank_request_seconds_sum", (("route", "/v1/rerank"),))] - 0.44) < 1e-9


def test_documents_and_tokens_scored_add_up() -> None:
    metrics = Metrics(stand_in_batcher())  # type: ignore[arg-type]
    metrics.count_scored(3, 120)
    metrics.count_scored(2, 30)
    got = samples(metrics)
    assert got[("rerank_documents_total", ())] == 5 and got[("rerank_tokens_total", ())] == 150


def test_the_batchers_queue_and_counters_are_read_at_each_scrape() -> None:
    batcher = stand_in_batcher(queued_pairs=7, batches=4, pairs=9, real_tokens=300, padded_tokens=360,
                               busy_seconds=1.5, abandoned_pairs=2, failed_batches=1, oom_splits=3)
    metrics = Metrics(batcher)  # type: ignore[arg-type]
    got = samples(metrics)
    assert got[("rerank_queue_pairs", ())] == 7
    assert {name: got[(name, ())] for name in (
        "rerank_batches_total", "rerank_batch_pairs_total", "rerank_batch_real_tokens_total",
        "rerank_batch_padded_tokens_total", "rerank_inference_seconds_total", "rerank_abandoned_pairs_total",
        "rerank_failed_batches_total", "rerank_oom_splits_total")} == {
        "rerank_batches_total": 4, "rerank_batch_pairs_total": 9, "rerank_batch_real_tokens_total": 300,
        "rerank_batch_padded_tokens_total": 360, "rerank_inference_seconds_total": 1.5,
        "rerank_abandoned_pairs_total": 2, "rerank_failed_batches_total": 1, "rerank_oom_splits_total": 3}
    batcher.queued_pairs, batcher.stats.batches = 0, 5  # the inference thread moved on
    again = samples(metrics)
    assert (again[("rerank_queue_pairs", ())], again[("rerank_batches_total", ())]) == (0, 5)


def test_each_app_has_its_own_registry() -> None:
    """Two apps in one process (tests, several servers) never collide nor share counts."""
    first, second = Metrics(stand_in_batcher()), Metrics(stand_in_batcher())  # type: ignore[arg-type]
    first.observe("/rerank", 200, 0.01)
    first.count_scored(1, 10)
    assert samples(first)[("rerank_requests_total", (("route", "/rerank"), ("status", "200")))] == 1
    assert ("rerank_requests_total", (("route", "/rerank"), ("status", "200"))) not in samples(second)
    assert samples(second)[("rerank_documents_total", ())] == 0
