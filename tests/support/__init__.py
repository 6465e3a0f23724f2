"""What the tests share: tiny models built on disk, a server process, the packaged Dify plugin over stdio,
FlagEmbedding's reference venv, the RAGFlow stand-in, respx doubles of the servers the client meets.

Imported as `tests.support.<module>` (pyproject.toml puts the repository root on pytest's path). Nothing here
imports more than the standard library at import time: `tiny_model` and `flag_reference` also run as
programs, the latter in the reference venv (`python -m tests.support.flag_reference`, from the repository root).
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
