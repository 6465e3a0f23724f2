"""What to expect from this model on this machine, measured once at start and said in one log line.

A reranker that needs 12 s for a Knowledge Retrieval step does not fail loudly: Dify's TEI plugin gives up
after 5 s and the step returns no documents. So the server times a few pairs of the usual RAG shape (20
passages of ~180 tokens), extrapolates to a whole request and, when that would miss an integration's
timeout, names what would fit. The timing doubles as the warm-up of the first request.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from local_server.batcher import plan_batches
from local_server.engine import RerankEngine

log = logging.getLogger(__name__)

PASSAGES = 20
# The timeouts a request from each integration meets by default (docs/dify.md, docs/ragflow.md).
TIMEOUTS: tuple[tuple[str, float], ...] = (
    ("Dify's built-in TEI provider", 5.0),
    ("RAGFlow's add-model check (LLM_TIMEOUT_SECONDS)", 10.0),
    ("rerank-kit's Dify plugin (its timeout field)", 60.0),
)
_QUERY = "how do I keep a reranker fast on a small machine"
_PASSAGE = ("A reranker reads the query and each retrieved passage together and scores how well the passage "
            "answers it; the scores reorder the passages before the language model sees them. ")


@dataclass(frozen=True)
class Expectation:
    seconds: float  # one request of PASSAGES passages, alone on the server
    missed: tuple[str, ...]  # the integrations whose default timeout it would exceed

    def message(self, model: str, backend: str, dtype: str) -> str:
        line = (f"{model}: a request of {PASSAGES} passages of ~180 tokens takes about {self.seconds:.1f} s "
                f"on this machine ({backend}, {dtype})")
        if not self.missed:
            return line + ", within every integration's default timeout"
        return (f"{line}: longer than the timeout of {', '.join(self.missed)}. To fit: "
                + "; ".join(_remedies(backend, dtype)))


def measure(engine: RerankEngine, *, sample_pairs: int = 4) -> Expectation:
    """Time `sample_pairs` pairs after one warm-up pair and scale to PASSAGES (batches as the batcher plans)."""
    pairs = engine.encode(_QUERY, [_PASSAGE * 4] * sample_pairs)  # ~180 tokens each, cut by the engine's rules
    engine.logits(pairs[:1])
    started = time.perf_counter()
    for batch in plan_batches([len(p) for p in pairs], engine.batch_tokens, len(pairs)):
        engine.logits([pairs[i] for i in batch])
    seconds = (time.perf_counter() - started) * PASSAGES / sample_pairs
    return Expectation(seconds, tuple(name for name, limit in TIMEOUTS if seconds > limit))


def _remedies(backend: str, dtype: str) -> list[str]:
    ways = []
    if backend == "torch":
        ways.append("RERANK_BACKEND=auto or onnx (ONNX Runtime, exact scores, faster on a CPU)")
    if dtype != "int8":
        ways.append("RERANK_ONNX_QUANTIZE=int8 (about 2x faster on a CPU; docs/BENCHMARKS.md shows the quality cost)")
    ways += ["a smaller model (a MiniLM-L6 cross-encoder needs about 1/25 of bge-reranker-v2-m3's compute per pair)",
             "fewer passages per request (the retrieval's top_k)", "a longer timeout in the integration"]
    return ways


def log_expectation(engine: RerankEngine, model: str) -> Expectation:
    expectation = measure(engine)
    (log.warning if expectation.missed else log.info)(
        "%s", expectation.message(model, engine.backend.name, engine.dtype))
    return expectation
