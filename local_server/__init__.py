"""The bundled reranker server: FastAPI routes per dialect -> batcher -> engine (one FlagReranker)."""
