"""RAGFlow integration: a rerank model class backed by a rerank-kit server, and its installer.

`rerank_model` is copied into RAGFlow (it needs only numpy and the light `rerank_kit` client);
`installer` (`rerank-kit install-ragflow`) patches a RAGFlow source tree or Docker deployment.
"""
