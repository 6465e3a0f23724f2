"""The tools behind `rerank-kit` subcommands (check, tune, package-dify) and the vendoring rule.

Nothing here is copied into Dify or RAGFlow: the copied core is `rerank_kit`'s top-level modules that the
integrations import (client, errors, protocol, scores, hybrid), which need only httpx and pydantic.
"""
