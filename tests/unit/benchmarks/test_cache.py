"""The score cache benchmark's workloads and verdicts, by hand: the repetition each workload claims is the
repetition it sends, and a target is met only by a measured ratio."""

from __future__ import annotations

import pytest

from benchmarks.cache import DOCS, primers, repeated_share, requests_for, summarise, verdicts

PASSAGES = [f"passage {i}" for i in range(100)]


@pytest.mark.parametrize(("workload", "share"), [("unique", 0.0), ("half-repeated", 0.5), ("replay", 0.99)])
def test_each_workload_repeats_what_it_says(workload: str, share: float) -> None:
    requests = requests_for(workload, PASSAGES, "round query", 100)
    assert all(len(r.documents) == DOCS for r in requests)
    assert repeated_share(workload, requests) == pytest.approx(share, abs=0.01)
    assert bool(primers(workload, requests)) == (workload == "half-repeated")


def test_rounds_never_share_a_pair() -> None:
    first, second = (requests_for("unique", PASSAGES, query, 50) for query in ("query one", "query two"))
    assert not {(r.query, d) for r in first for d in r.documents} & {(r.query, d) for r in second for d in r.documents}


def cells(off: float | None, on: float | None, on_p50: float = 5.0) -> dict:
    return {"off": [{"pairs_per_s": off, "p50_ms": 100.0, "failed": 0 if off else 1}],
            "on": [{"pairs_per_s": on, "p50_ms": on_p50, "failed": 0 if on else 1}]}


def test_a_target_is_met_only_by_its_measured_ratio() -> None:
    met = summarise({"unique": cells(100, 99), "half-repeated": cells(100, 190), "replay c=1": cells(30, 9e3)})
    assert verdicts(met).count(": met") == 3
    missed = summarise({"unique": cells(100, 97), "half-repeated": cells(100, 170),
                        "replay c=1": cells(30, 9e3, on_p50=12.0)})
    assert verdicts(missed).count("NOT met") == 3
    failed = summarise({"unique": cells(100, None), "half-repeated": cells(None, 190), "replay c=1": cells(30, 9e3)})
    assert failed["unique"]["ratio"] is None and verdicts(failed).count("NOT met") == 2  # failures: no throughput
