#!/usr/bin/env bash
# Build the rerank-kit Dify plugin (.difypkg) and prepare a self-hosted Dify (Docker) to install it.
#
#   scripts/install_dify.sh [--dify-docker DIR] [--recreate] [--check URL] [-o DIST]
#
#   --dify-docker DIR  Dify's docker/ folder: set FORCE_VERIFYING_SIGNATURE=false in its .env (a backup is
#                      kept) and, on Linux, let plugin_daemon reach host.docker.internal (compose override)
#   --recreate         then recreate Dify's containers there (docker compose up -d); a restart is not enough
#   --check URL        check the rerank server from this machine first (default http://localhost:8086)
#   -o DIST            output folder for the package (default: dist/)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dify_docker=""
recreate=0
check_url="http://localhost:8086"
dist="$repo/dist"

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dify-docker) dify_docker="$2"; shift 2 ;;
    --recreate) recreate=1; shift ;;
    --check) check_url="$2"; shift 2 ;;
    -o) dist="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done

# rerank-kit from the repo's venv, else any Python that has pyyaml/httpx/pydantic with the repo on its path.
if [ -x "$repo/.venv/bin/rerank-kit" ]; then
  rerank_kit=("$repo/.venv/bin/rerank-kit")
else
  rerank_kit=(env PYTHONPATH="$repo" "${PYTHON:-python3}" -m rerank_kit.cli)
fi

echo "==> checking the rerank server at $check_url"
if ! "${rerank_kit[@]}" check "$check_url"; then
  echo "    (not fatal: start it with 'make run' or scripts/install_server.sh before adding the model in Dify)"
fi

echo "==> building the plugin package"
"${rerank_kit[@]}" package-dify -o "$dist"

if [ -n "$dify_docker" ]; then
  env_file="$dify_docker/.env"
  [ -f "$dify_docker/docker-compose.yaml" ] || { echo "$dify_docker has no docker-compose.yaml: pass Dify's docker/ folder" >&2; exit 1; }
  [ -f "$env_file" ] || { echo "$env_file is missing: copy .env.example to .env first (Dify's setup step)" >&2; exit 1; }
  if grep -Eq '^FORCE_VERIFYING_SIGNATURE=false\s*$' "$env_file"; then
    echo "==> $env_file already has FORCE_VERIFYING_SIGNATURE=false"
  else
    backup="$env_file.bak-$(date +%Y%m%d%H%M%S)"
    cp "$env_file" "$backup"
    if grep -Eq '^FORCE_VERIFYING_SIGNATURE=' "$env_file"; then
      sed -i.tmp -E 's/^FORCE_VERIFYING_SIGNATURE=.*/FORCE_VERIFYING_SIGNATURE=false/' "$env_file" && rm -f "$env_file.tmp"
    else
      printf '\nFORCE_VERIFYING_SIGNATURE=false\n' >> "$env_file"
    fi
    echo "==> set FORCE_VERIFYING_SIGNATURE=false in $env_file (backup: $backup)"
  fi
  override="$dify_docker/docker-compose.override.yaml"
  if [ "$(uname -s)" = "Linux" ]; then
    if [ -e "$override" ]; then
      echo "==> $override exists: make sure plugin_daemon has extra_hosts: [\"host.docker.internal:host-gateway\"]"
    else
      cat > "$override" <<'EOF'
# Written by rerank-kit's scripts/install_dify.sh: lets plugins reach a server on the Docker host.
services:
  plugin_daemon:
    extra_hosts:
      - "host.docker.internal:host-gateway"
EOF
      echo "==> wrote $override (plugin_daemon can now reach host.docker.internal)"
    fi
  fi
  if [ "$recreate" -eq 1 ]; then
    echo "==> recreating Dify's containers (docker compose up -d)"
    (cd "$dify_docker" && docker compose up -d)
  else
    echo "==> now recreate Dify's containers so they read the new settings (a restart does not):"
    echo "      cd $dify_docker && docker compose up -d"
  fi
fi

cat <<EOF

Next, in Dify:
  1. Plugins -> Install plugin -> Local package file: upload $(ls "$dist"/*.difypkg | head -n 1)
     ("bad signature" / "plugin verification failed" means FORCE_VERIFYING_SIGNATURE is still true in
     the running containers: set it to false in docker/.env and run 'docker compose up -d').
  2. Settings -> Model Provider -> Local Reranker (rerank-kit) -> Add Model:
       Model Name  the model the server serves (e.g. BAAI/bge-reranker-v2-m3)
       Server URL  http://host.docker.internal:8086  (Dify in Docker, server on this host)
       API Key     the server's RERANK_API_KEY, or empty
       Timeout     60 s by default: raise it when reranking many chunks on CPU
  3. Pick it as the Rerank Model of a knowledge base or of a Knowledge Retrieval node.
See docs/dify.md for troubleshooting.
EOF
