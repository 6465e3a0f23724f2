"""rerank-kit: the shared, light core (client, wire models, hybrid-score helpers, packaging).

Never imports torch or the dify_plugin SDK: the Dify plugin and RAGFlow import this package.
"""

__version__ = "0.1.0"

# The server's default port, and its URL as seen from a Docker container (Dify, RAGFlow).
DEFAULT_PORT = 8086
DOCKER_SERVER_URL = f"http://host.docker.internal:{DEFAULT_PORT}"
# The server URL an integration falls back to when given none (the RAGFlow installer's compose override sets it).
BASE_URL_ENV = "RERANK_KIT_BASE_URL"
