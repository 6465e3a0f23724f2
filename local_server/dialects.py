"""Build each dialect's response from one request's scores."""

from __future__ import annotations

import math
import uuid

from local_server.scoring import Scored
from rerank_kit.protocol import (
    BilledUnits,
    Meta,
    OllamaRerankRequest,
    OllamaRerankResponse,
    OllamaRerankResult,
    RerankRequest,
    RerankResponse,
    RerankResult,
    ResultDocument,
    TEIRankedText,
    TEIRerankRequest,
    TokenCounts,
    Usage,
)
from rerank_kit.scores import ranking

# Cohere bills one search unit per query with up to 100 documents.
_DOCS_PER_SEARCH_UNIT = 100


def documents_response(request: RerankRequest, scored: Scored, *, return_documents: bool) -> RerankResponse:
    """Native / Cohere v1+v2 / Jina / Xinference / OpenAI-compatible response body."""
    texts = request.texts()
    if request.return_documents is not None:
        return_documents = request.return_documents
    results = [
        RerankResult(index=i, relevance_score=float(scored.scores[i]),
                     document=ResultDocument(text=texts[i]) if return_documents else None)
        for i in ranking(scored.scores, request.top_n)
    ]
    meta = Meta(billed_units=BilledUnits(search_units=max(1, math.ceil(len(texts) / _DOCS_PER_SEARCH_UNIT))),
                tokens=TokenCounts(input_tokens=scored.tokens))
    return RerankResponse(
        id=uuid.uuid4().hex, model=scored.model, results=results,
        usage=Usage(prompt_tokens=scored.tokens, total_tokens=scored.tokens), meta=meta,
    )


def tei_response(request: TEIRerankRequest, scored: Scored) -> list[TEIRankedText]:
    """TEI's bare list, sorted by score descending."""
    return [
        TEIRankedText(index=i, score=float(scored.scores[i]), text=request.texts[i] if request.return_text else None)
        for i in ranking(scored.scores)
    ]


def ollama_response(request: OllamaRerankRequest, scored: Scored) -> OllamaRerankResponse:
    """Ollama's shape: results best first (Dify's Ollama plugin keeps their order), documents as strings."""
    return OllamaRerankResponse(model=scored.model, results=[
        OllamaRerankResult(index=i, relevance_score=float(scored.scores[i]),
                           document=request.documents[i] if request.return_documents else None)
        for i in ranking(scored.scores, request.top_n)
    ])
