"""`rerank-kit tune labels.jsonl`: pick hybrid-score weights for RAGFlow and Dify from labelled queries.

Each JSONL line is one query with its candidates' scores and relevance labels (docs/tuning.md):
`{"query": "...", "candidates": [{"keyword": 0.4, "vector": 0.7, "rerank": 0.9, "relevance": 2}, ...]}`.
For every weight on a grid it ranks each query's candidates the way the platform would
(rerank_kit.hybrid), scores the ranking with nDCG@k and MRR, and reports the best weight and its gain
over the platform default.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rerank_kit.hybrid import (
    DIFY_DEFAULT_VECTOR_WEIGHT,
    RAGFLOW_DEFAULT_VECTOR_SIMILARITY_WEIGHT,
    dify_weighted_score,
    ragflow_blend,
    ragflow_normalize_rank,
)
from rerank_kit.scores import ranking


class Candidate(BaseModel):
    """One retrieved chunk: the platform's scores for it and its graded relevance (0 = not relevant)."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    keyword: float | None = Field(default=None, description="keyword similarity (RAGFlow tksim, Dify keyword)")
    vector: float | None = Field(default=None, description="embedding cosine similarity")
    rerank: float | None = Field(default=None, description="the reranker's score")
    rank_fea: float = Field(default=0.0, description="RAGFlow tag/pagerank feature, added to the blend")
    relevance: float = Field(ge=0)


class LabelledQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: str
    candidates: list[Candidate] = Field(min_length=1)


def load_labels(path: Path) -> list[LabelledQuery]:
    """Parse the JSONL file; blank lines and `#` comments are skipped; errors name the line."""
    queries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            queries.append(LabelledQuery.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ValueError(f"{path}:{number}: {where}: {first['msg']}") from None
    if not queries:
        raise ValueError(f"{path}: no labelled queries")
    return queries


def ndcg_at_k(relevances: Sequence[float], k: int) -> float:
    """nDCG@k with linear gain: sum rel_i / log2(i + 1) over ranks i = 1..k, over the ideal ordering's."""
    def dcg(values: Sequence[float]) -> float:
        return sum(rel / math.log2(rank + 1) for rank, rel in enumerate(values[:k], start=1))

    ideal = dcg(sorted(relevances, reverse=True))
    return dcg(relevances) / ideal if ideal > 0 else 0.0


def reciprocal_rank(relevances: Sequence[float]) -> float:
    """1 / rank of the first relevant (> 0) item; 0 when none is relevant."""
    return next((1.0 / rank for rank, rel in enumerate(relevances, start=1) if rel > 0), 0.0)


Scorer = Callable[[LabelledQuery, float], list[float]]


def ragflow_scores(query: LabelledQuery, weight: float, *, use_rerank: bool = True) -> list[float]:
    """RAGFlow's blend with a rerank model (rerank scores through `_normalize_rank`), else with vectors."""
    candidates = query.candidates
    vtsim = ragflow_normalize_rank([c.rerank for c in candidates]) if use_rerank else [c.vector for c in candidates]
    return ragflow_blend([c.keyword for c in candidates], vtsim, weight, [c.rank_fea for c in candidates])


def dify_scores(query: LabelledQuery, weight: float) -> list[float]:
    """Dify's weighted score with `keyword_weight = 1 - vector_weight`."""
    return dify_weighted_score([c.vector for c in query.candidates], [c.keyword for c in query.candidates], weight)


@dataclass(frozen=True)
class Point:
    weight: float
    ndcg: float
    mrr: float


@dataclass(frozen=True)
class Sweep:
    title: str
    default: float
    points: list[Point]

    @property
    def best(self) -> Point:
        """Highest nDCG, then MRR; among equals the weight closest to the platform default."""
        return max(self.points, key=lambda p: (round(p.ndcg, 12), round(p.mrr, 12), -abs(p.weight - self.default)))

    @property
    def at_default(self) -> Point:
        return next(p for p in self.points if math.isclose(p.weight, self.default))


def evaluate(queries: Sequence[LabelledQuery], scores: Callable[[LabelledQuery], list[float]],
             k: int) -> tuple[float, float]:
    """Mean nDCG@k and MRR over the queries that have a relevant candidate."""
    judged = [q for q in queries if any(c.relevance > 0 for c in q.candidates)]
    ndcgs, mrrs = [], []
    for query in judged:
        relevances = [query.candidates[i].relevance for i in ranking(scores(query))]
        ndcgs.append(ndcg_at_k(relevances, k))
        mrrs.append(reciprocal_rank(relevances))
    return sum(ndcgs) / len(judged), sum(mrrs) / len(judged)


def weight_grid(step: float, *defaults: float) -> list[float]:
    steps = round(1 / step)
    return sorted({round(i / steps, 6) for i in range(steps + 1)} | set(defaults))


def sweep(title: str, queries: Sequence[LabelledQuery], scorer: Scorer, default: float, k: int,
          step: float) -> Sweep:
    points = [Point(w, *evaluate(queries, lambda q, w=w: scorer(q, w), k)) for w in weight_grid(step, default)]
    return Sweep(title, default, points)


def _has(queries: Sequence[LabelledQuery], *fields: str) -> bool:
    return all(getattr(c, name) is not None for q in queries for c in q.candidates for name in fields)


def sweeps(queries: Sequence[LabelledQuery], k: int, step: float) -> tuple[list[Sweep], list[str]]:
    """The sweeps the data supports, and a note for each one it cannot."""
    done, notes = [], []
    if _has(queries, "keyword") and (_has(queries, "rerank") or _has(queries, "vector")):
        use_rerank = _has(queries, "rerank")
        done.append(sweep(
            f"RAGFlow vector_similarity_weight w: (1 - w) * keyword + w * {'rerank' if use_rerank else 'vector'}"
            " + rank_fea", queries, lambda q, w: ragflow_scores(q, w, use_rerank=use_rerank),
            RAGFLOW_DEFAULT_VECTOR_SIMILARITY_WEIGHT, k, step))
    else:
        notes.append("RAGFlow sweep skipped: every candidate needs `keyword` and `rerank` (or `vector`)")
    if _has(queries, "keyword", "vector"):
        done.append(sweep("Dify weighted score vector_weight w: w * vector + (1 - w) * keyword",
                          queries, dify_scores, DIFY_DEFAULT_VECTOR_WEIGHT, k, step))
    else:
        notes.append("Dify sweep skipped: every candidate needs `keyword` and `vector`")
    return done, notes


def _gain(best: Point, default: Point) -> str:
    delta = best.ndcg - default.ndcg
    relative = f", {delta / default.ndcg:+.1%}" if default.ndcg else ""
    return f"{delta:+.4f}{relative}"


def render(result: Sweep, k: int) -> list[str]:
    best, default = result.best, result.at_default
    lines = [result.title, f"  {'w':>5}  nDCG@{k:<3} MRR"]
    for point in result.points:
        marks = [label for label, p in (("best", best), ("default", default)) if p is point]
        lines.append(f"  {point.weight:5.2f}  {point.ndcg:.4f}  {point.mrr:.4f}"
                     + (f"  <- {', '.join(marks)}" if marks else ""))
    lines.append(f"Best w = {best.weight:.2f}: nDCG@{k} {best.ndcg:.4f} vs {default.ndcg:.4f} at the default "
                 f"{result.default:.2f} ({_gain(best, default)}); MRR {best.mrr:.4f} vs {default.mrr:.4f}")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("labels", type=Path, help="JSONL file of labelled queries (see docs/tuning.md)")
    parser.add_argument("--k", type=int, default=5, help="nDCG cut-off (default 5)")
    parser.add_argument("--step", type=float, default=0.05, help="weight grid step (default 0.05)")


def run(args: argparse.Namespace) -> int:
    if args.k < 1 or not 0 < args.step <= 0.5:
        print("--k must be >= 1 and --step in (0, 0.5]")
        return 2
    try:
        queries = load_labels(args.labels)
    except (OSError, ValueError) as exc:
        print(f"cannot read labels: {exc}")
        return 2
    judged = sum(any(c.relevance > 0 for c in q.candidates) for q in queries)
    if not judged:
        print(f"{args.labels}: no query has a relevant candidate (relevance > 0); nothing to tune")
        return 2
    results, notes = sweeps(queries, args.k, args.step)
    print(f"rerank-kit tune {args.labels}: {len(queries)} queries, {judged} with a relevant candidate; "
          f"nDCG@{args.k} and MRR per weight")
    for result in results:
        print()
        print("\n".join(render(result, args.k)))
    if _has(queries, "rerank"):
        ndcg, mrr = evaluate(queries, lambda q: [c.rerank for c in q.candidates], args.k)
        print(f"\nDify rerank-model mode (rerank score alone): nDCG@{args.k} {ndcg:.4f}, MRR {mrr:.4f}")
    for note in notes:
        print(note)
    return 0 if results else 1
