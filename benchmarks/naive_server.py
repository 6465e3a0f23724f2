"""The server users hand-write from the common tutorials: FastAPI + FlagReranker, one compute_score call
per request inside an `async def` route. Run: `NAIVE_MODEL=<folder> uvicorn benchmarks.naive_server:app`.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from FlagEmbedding import FlagReranker
from pydantic import BaseModel

app = FastAPI()
reranker = FlagReranker(os.environ["NAIVE_MODEL"], use_fp16=False, devices=["cpu"])


class RerankBody(BaseModel):
    query: str
    documents: list[str]


@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}


@app.post("/rerank")
async def rerank(body: RerankBody) -> dict:
    scores = reranker.compute_score([[body.query, doc] for doc in body.documents], normalize=True)
    ranked = sorted(enumerate(scores), key=lambda item: item[1], reverse=True)
    return {"results": [{"index": index, "relevance_score": score} for index, score in ranked]}
