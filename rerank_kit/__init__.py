"""rerank-kit: the shared, light core (client, wire models, hybrid-score helpers, packaging).

Never imports torch or the dify_plugin SDK: the Dify plugin and RAGFlow import this package.
"""

__version__ = "0.1.0"
