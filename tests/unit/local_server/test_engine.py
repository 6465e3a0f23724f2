"""The engine's tokenisation (local_server/engine.py): the cross-encoder's batched pair tokenisation gives
FlagEmbedding's ids exactly: the whole request against compute_score's own tokenisation, and every window (left
truncation, several windows, no truncation) against prepare_for_model_compat called pair by pair, as the
reference does; and the document windows on their own (a quarter's overlap, the truncation direction)."""

from __future__ import annotations

from pathlib import Path

import pytest
from FlagEmbedding.utils.tokenizer_compat import prepare_for_model_compat

from local_server.backends import load_backend
from local_server.engine import RerankEngine, document_windows
from local_server.settings import Settings

LONG = " ".join(f"word{i} paris river city weather" for i in range(200))
DOCUMENTS = [
    "paris is the capital city of france",
    "",  # nothing to score but the query
    "dog",
    LONG,  # cut at the right
    "naïve café — ünïcödé straße 東京 🙂 and unknown glyphs ☃",  # normalisation and [UNK]
    "  leading and trailing spaces\tand\ttabs  ",
    "the the the " * 300,
]
QUERIES = ["which city is the capital of france", " ".join(["a very long query"] * 200)]  # the second is cut


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> RerankEngine:
    settings = Settings(model=str(tiny_model_dir), offline=True, backend="torch", max_length=64)
    return RerankEngine(load_backend(settings), settings)


@pytest.mark.parametrize("query", QUERIES)
def test_a_request_is_tokenised_as_compute_score_does(engine: RerankEngine, query: str) -> None:
    tok = engine.tokenizer
    q_ids = tok(query, add_special_tokens=False, max_length=engine.family.query_max_length,
                truncation=True)["input_ids"]
    room = engine.max_length - len(q_ids) - tok.num_special_tokens_to_add(pair=True)
    expected = []
    for document in DOCUMENTS:  # FlagReranker.compute_score's steps, pair by pair
        p_ids = tok(document, add_special_tokens=False, max_length=room, truncation=True)["input_ids"]
        item = prepare_for_model_compat(tok, q_ids, p_ids, truncation="only_second", max_length=engine.max_length,
                                        padding=False)
        expected.append((item["input_ids"], item["token_type_ids"]))
    pairs = engine.encode(query, DOCUMENTS)
    assert [(p.input_ids, p.token_type_ids) for p in pairs] == expected


@pytest.mark.parametrize(("direction", "chunks", "truncate"), [("left", 1, True), ("right", 4, True),
                                                               ("left", 3, True), ("right", 1, False)])
def test_every_window_is_joined_as_the_reference_joins_it(engine: RerankEngine, direction: str, chunks: int,
                                                          truncate: bool) -> None:
    documents = DOCUMENTS if truncate else DOCUMENTS[:3]  # no truncation: only documents that fit
    pairs = engine.encode(QUERIES[0], documents, direction=direction, max_chunks_per_doc=chunks, truncate=truncate)
    tok = engine.tokenizer
    frame = engine.family.frame(engine._tokenize, QUERIES[0], None)
    expected = []
    for doc, document in enumerate(documents):
        ids = tok(document, add_special_tokens=False)["input_ids"]
        for window in document_windows(ids, frame.room, chunks, direction):
            item = prepare_for_model_compat(tok, frame.before, window, truncation="only_second",
                                            max_length=engine.max_length, padding=False)
            expected.append((doc, item["input_ids"], item["token_type_ids"]))
    assert [(p.doc, p.input_ids, p.token_type_ids) for p in pairs] == expected
    assert len(pairs) > len(documents) or chunks == 1


@pytest.mark.parametrize(
    ("length", "size", "chunks", "expected_starts"),
    [(10, 20, 4, [0]), (100, 40, 1, [0]), (100, 40, 4, [0, 30, 60]), (1000, 40, 3, [0, 30, 60])],
)
def test_windows_overlap_by_a_quarter(length: int, size: int, chunks: int, expected_starts: list[int]) -> None:
    ids = list(range(length))
    windows = document_windows(ids, size, chunks, "right")
    assert [w[0] for w in windows] == expected_starts
    assert all(len(w) == min(size, length - w[0]) for w in windows)
    if chunks > 1 and length > size and len(expected_starts) < chunks:
        assert windows[-1][-1] == length - 1  # the windows reach the end when allowed enough of them


def test_single_window_truncation_direction() -> None:
    ids = list(range(10))
    assert document_windows(ids, 4, 1, "right") == [[0, 1, 2, 3]]
    assert document_windows(ids, 4, 1, "left") == [[6, 7, 8, 9]]
