#!/usr/bin/env bash
# Add the rerank-kit rerank factory to RAGFlow (docs/ragflow.md).
#   scripts/install_ragflow.sh /path/to/ragflow          a source tree (patched in place; also writes
#                                                        docker/docker-compose.rerank-kit.yml if docker/ exists)
#   scripts/install_ragflow.sh /path/to/ragflow/docker   a docker-compose deployment folder (reads the image's
#                                                        files with the docker CLI, or --ragflow-source DIR)
#   scripts/install_ragflow.sh PATH --dry-run            show the diff, write nothing
#   scripts/install_ragflow.sh PATH --uninstall          restore every file it changed
# Needs Python 3.11+ with PyYAML (the repository's .venv has both). Restart RAGFlow afterwards.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ $# -eq 0 ]; then
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
for python in "$repo/.venv/bin/python" python3.12 python3.11 python3; do
  if command -v "$python" >/dev/null 2>&1 &&
     "$python" -c 'import sys, yaml; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m rerank_kit.cli install-ragflow "$@"
  fi
done
echo "error: needs Python 3.11+ with PyYAML: run 'make run' once (it builds .venv) or 'pip install pyyaml'" >&2
exit 1
