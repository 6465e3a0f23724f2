"""The batch planner and the document windowing, on their own."""

from __future__ import annotations

from local_server.batcher import plan_batches


def test_batches_are_length_sorted_and_fit_the_token_budget() -> None:
    lengths = [10, 200, 30, 180, 50, 190, 20, 40]
    batches = plan_batches(lengths, max_tokens=400, max_size=32)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths, reverse=True)  # longest first, so each batch pads to its first item
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= 400
    # By hand: 2*200 fits 400, 3*200 does not; 2*180 fits, 3*180 does not; 4*40 fits.
    assert [[lengths[i] for i in b] for b in batches] == [[200, 190], [180, 50], [40, 30, 20, 10]]


def test_batch_size_cap_and_oversized_items() -> None:
    assert [len(b) for b in plan_batches([5] * 10, max_tokens=10_000, max_size=4)] == [4, 4, 2]
    assert plan_batches([900, 10], max_tokens=100, max_size=8) == [[0], [1]]  # an item over budget runs alone
    assert plan_batches([], max_tokens=100, max_size=8) == []
