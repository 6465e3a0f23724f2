"""A stand-in of RAGFlow's layout (README.md); `harness` copies, patches and imports it."""
