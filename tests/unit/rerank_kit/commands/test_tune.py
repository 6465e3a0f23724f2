"""The tuner: metrics by hand, label parsing, weight sweeps, and the `rerank-kit tune` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rerank_kit.cli import main
from rerank_kit.commands.tune import (
    LabelledQuery,
    Point,
    Sweep,
    dify_scores,
    evaluate,
    load_labels,
    ndcg_at_k,
    ragflow_scores,
    reciprocal_rank,
    weight_grid,
)
from rerank_kit.scores import ranking
from tests.support import REPO_ROOT

EXAMPLE = REPO_ROOT / "docs" / "examples" / "tune_labels.jsonl"


def labelled(*candidates: dict) -> LabelledQuery:
    return LabelledQuery.model_validate({"query": "q", "candidates": list(candidates)})


def test_ndcg_at_k_by_hand() -> None:
    # DCG = 0/log2(2) + 2/log2(3) + 1/log2(4) = 1.2618595 + 0.5 = 1.7618595
    # IDCG (2, 1, 0) = 2/log2(2) + 1/log2(3) = 2 + 0.6309298 = 2.6309298 -> 0.6696718
    assert ndcg_at_k([0, 2, 1], 3) == pytest.approx(0.66967181649423)
    assert ndcg_at_k([0, 2, 1], 1) == 0.0  # the first item is not relevant
    assert ndcg_at_k([2, 1, 0], 2) == pytest.approx(1.0)
    assert ndcg_at_k([0, 0], 5) == 0.0  # nothing relevant


def test_reciprocal_rank_and_ranked_order() -> None:
    assert reciprocal_rank([0, 0, 1, 2]) == pytest.approx(1 / 3)
    assert reciprocal_rank([0, 0]) == 0.0
    assert ranking([0.2, 0.9, 0.2, 0.5]) == [1, 3, 0, 2]  # the tie keeps retrieval order


def test_platform_scorers_by_hand() -> None:
    query = labelled({"keyword": 0.6, "vector": 0.5, "rerank": 2.0, "rank_fea": 0.1, "relevance": 0},
                     {"keyword": 0.2, "vector": 0.9, "rerank": -2.0, "relevance": 1})
    # RAGFlow: rerank scores (2, -2) leave [0, 1], so _normalize_rank min-maxes them to (1, 0);
    # w = 0.3: 0.7 * 0.6 + 0.3 * 1 + 0.1 = 0.82 and 0.7 * 0.2 + 0.3 * 0 = 0.14
    assert ragflow_scores(query, 0.3) == pytest.approx([0.82, 0.14])
    # without a rerank model RAGFlow blends the vector similarity: 0.42 + 0.15 + 0.1, 0.14 + 0.27
    assert ragflow_scores(query, 0.3, use_rerank=False) == pytest.approx([0.67, 0.41])
    # Dify w = 0.7: 0.7 * 0.5 + 0.3 * 0.6 = 0.53 and 0.7 * 0.9 + 0.3 * 0.2 = 0.69
    assert dify_scores(query, 0.7) == pytest.approx([0.53, 0.69])


def test_evaluate_averages_only_judged_queries() -> None:
    first = labelled({"rerank": 0.9, "relevance": 0}, {"rerank": 0.1, "relevance": 1})  # relevant at rank 2
    second = labelled({"rerank": 0.9, "relevance": 1}, {"rerank": 0.1, "relevance": 0})  # relevant at rank 1
    unjudged = labelled({"rerank": 0.5, "relevance": 0})
    ndcg, mrr = evaluate([first, second, unjudged], lambda q: [c.rerank for c in q.candidates], k=5)
    # nDCG: (1/log2(3) + 1) / 2 = (0.6309298 + 1) / 2; MRR: (1/2 + 1) / 2
    assert (ndcg, mrr) == (pytest.approx(0.8154648767857288), pytest.approx(0.75))


def test_weight_grid_contains_the_defaults() -> None:
    assert weight_grid(0.25, 0.3) == [0.0, 0.25, 0.3, 0.5, 0.75, 1.0]
    assert len(weight_grid(0.05, 0.3, 0.7)) == 21


def test_best_weight_prefers_the_default_among_equals() -> None:
    sweep = Sweep("s", 0.7, [Point(0.5, 0.9, 1.0), Point(0.7, 0.9, 1.0), Point(1.0, 0.9, 1.0), Point(0.2, 0.8, 1.0)])
    assert sweep.best.weight == 0.7 and sweep.at_default.weight == 0.7
    assert Sweep("s", 0.3, sweep.points).best.weight == 0.5


def test_load_labels_skips_comments_and_names_bad_lines(tmp_path: Path) -> None:
    good = {"query": "q", "candidates": [{"keyword": 0.1, "relevance": 1}]}
    path = tmp_path / "labels.jsonl"
    path.write_text(f"# comment\n\n{json.dumps(good)}\n")
    assert len(load_labels(path)) == 1
    path.write_text(f"{json.dumps(good)}\n" + json.dumps({"query": "q", "candidates": [{"relevance": -1}]}) + "\n")
    with pytest.raises(ValueError, match=r"labels.jsonl:2: candidates.0.relevance: Input should be greater"):
        load_labels(path)
    path.write_text("# only a comment\n")
    with pytest.raises(ValueError, match="no labelled queries"):
        load_labels(path)


def test_tune_command_on_a_hand_checked_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # keyword favours A (not relevant), rerank and vector favour B (relevant):
    # RAGFlow sim_A = (1 - w) * 1, sim_B = w * 1 -> B first only when w > 0.5 (a tie keeps A first)
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps({"query": "q", "candidates": [
        {"id": "A", "keyword": 1.0, "vector": 0.0, "rerank": 0.0, "relevance": 0},
        {"id": "B", "keyword": 0.0, "vector": 1.0, "rerank": 1.0, "relevance": 1}]}) + "\n")
    assert main(["tune", str(path), "--step", "0.25"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"rerank-kit tune {path}: 1 queries, 1 with a relevant candidate; nDCG@5 and MRR per weight"
    # A first: nDCG = (1/log2(3)) / 1 = 0.6309, MRR 1/2; B first: 1.0 and 1.0
    assert "   0.30  0.6309  0.5000  <- default" in lines
    assert "   0.75  1.0000  1.0000  <- best" in lines
    assert ("Best w = 0.75: nDCG@5 1.0000 vs 0.6309 at the default 0.30 (+0.3691, +58.5%); MRR 1.0000 vs 0.5000"
            in lines)
    # Dify's default 0.7 already ranks B first; among equal weights the default is kept
    assert "   0.70  1.0000  1.0000  <- best, default" in lines
    assert ("Best w = 0.70: nDCG@5 1.0000 vs 1.0000 at the default 0.70 (+0.0000, +0.0%); MRR 1.0000 vs 1.0000"
            in lines)
    assert lines[-1] == "Dify rerank-model mode (rerank score alone): nDCG@5 1.0000, MRR 1.0000"


def test_tune_command_without_vector_scores_skips_dify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps({"query": "q", "candidates": [{"keyword": 0.3, "rerank": 0.8, "relevance": 1},
                                                             {"keyword": 0.9, "rerank": 0.1, "relevance": 0}]}))
    assert main(["tune", str(path)]) == 0
    out = capsys.readouterr().out
    assert "RAGFlow vector_similarity_weight w: (1 - w) * keyword + w * rerank + rank_fea" in out
    assert out.splitlines()[-1] == "Dify sweep skipped: every candidate needs `keyword` and `vector`"


@pytest.mark.parametrize(("content", "message"), [
    ('{"query": "q", "candidates": [{"keyword": 0.1, "relevance": 0}]}', "no query has a relevant candidate"),
    ('{"query": "q"}', "cannot read labels"),
])
def test_tune_command_refuses_unusable_files(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str,
                                             message: str) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text(content)
    assert main(["tune", str(path)]) == 2
    assert message in capsys.readouterr().out


def test_tune_command_on_the_documented_example(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLE.parents[2])
    assert main(["tune", "docs/examples/tune_labels.jsonl"]) == 0
    out = capsys.readouterr().out
    queries = load_labels(EXAMPLE)
    default_ndcg, _ = evaluate(queries, lambda q: ragflow_scores(q, 0.3), k=5)
    assert f"   0.30  {default_ndcg:.4f}" in out
    assert out.count("Best w = ") == 2
    documented = (EXAMPLE.parent.parent / "tuning.md").read_text()
    assert out.strip() in documented  # docs/tuning.md shows this exact output
