# Stand-in for RAGFlow's `rag` package (infiniflow/ragflow, rag/__init__.py): only what the rerank
# integration touches is reproduced here; this is our own code, not RAGFlow's.
