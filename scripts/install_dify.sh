#!/usr/bin/env bash
# Build the rerank-kit Dify plugins (.difypkg: the model provider and the workflow Rerank tool) and prepare a
# self-hosted Dify (Docker) to install them.
#
#   scripts/install_dify.sh [--dify-docker DIR] [--recreate] [--sign KEY] [--offline] [--check URL] [-o DIST]
#
#   --dify-docker DIR  Dify's docker/ folder: let it install the packages (a backup of .env is kept) and, on
#                      Linux, let plugin_daemon reach host.docker.internal (docker-compose.override.yaml)
#   --sign KEY         sign the packages with KEY (an RSA private key; made with `rerank-kit dify-keygen` when
#                      it does not exist) and, with --dify-docker, make Dify trust its public key
#                      (THIRD_PARTY_SIGNATURE_VERIFICATION_*) instead of turning signature checks off
#   --offline          packages that carry their dependencies as wheels, for a Dify without a package index
#   --recreate         then recreate Dify's containers there (docker compose up -d); a restart is not enough
#   --check URL        check the rerank server from this machine first (default http://localhost:8086)
#   -o DIST            output folder for the packages (default: dist/)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dify_docker=""
recreate=0
sign_key=""
offline=0
check_url="http://localhost:8086"
dist="$repo/dist"
marker="# Written by rerank-kit's scripts/install_dify.sh"
# Dify's plugin_daemon mounts docker/volumes/plugin_daemon at /app/storage (Dify's docker-compose.yaml).
keys_dir="volumes/plugin_daemon/public_keys"
keys_in_container="/app/storage/public_keys"

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || { echo "$1 needs a value" >&2; usage >&2; exit 2; }; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dify-docker) need_value "$@"; dify_docker="$2"; shift 2 ;;
    --recreate) recreate=1; shift ;;
    --sign) need_value "$@"; sign_key="$2"; shift 2 ;;
    --offline) offline=1; shift ;;
    --check) need_value "$@"; check_url="$2"; shift 2 ;;
    -o) need_value "$@"; dist="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done

# rerank-kit from the repo's venv, else any Python that has its dependencies with the repo on its path.
if [ -x "$repo/.venv/bin/rerank-kit" ]; then
  rerank_kit=("$repo/.venv/bin/rerank-kit")
else
  rerank_kit=(env PYTHONPATH="$repo" "${PYTHON:-python3}" -m rerank_kit.cli)
fi

# set_env FILE KEY VALUE: KEY=VALUE in a docker .env, replacing an existing line or appending one.
set_env() {
  if grep -Eq "^$2=" "$1"; then
    local escaped=${3//&/\\&}
    sed -i.tmp -E "s|^$2=.*|$2=${escaped//|/\\|}|" "$1" && rm -f "$1.tmp"
  else
    printf '%s=%s\n' "$2" "$3" >> "$1"
  fi
}
env_value() { grep -E "^$2=" "$1" | tail -n 1 | cut -d= -f2- || true; }

echo "==> checking the rerank server at $check_url"
if ! "${rerank_kit[@]}" check "$check_url"; then
  echo "    (not fatal: start it with 'make run' or scripts/install_server.sh before adding the model in Dify)"
fi

public_key=""
build=(package-dify -o "$dist")
if [ -n "$sign_key" ]; then
  case "$sign_key" in
    *.private.pem) stem=${sign_key%.private.pem} ;;
    *) echo "--sign takes NAME.private.pem (rerank-kit dify-keygen NAME writes the pair)" >&2; exit 2 ;;
  esac
  if [ ! -e "$sign_key" ]; then
    echo "==> $sign_key does not exist: making a new key pair"
    "${rerank_kit[@]}" dify-keygen "$stem" > /dev/null
  fi
  public_key="$stem.public.pem"
  [ -f "$public_key" ] || { echo "$public_key is missing: it must sit next to $sign_key" >&2; exit 1; }
  build+=(--sign "$sign_key")
fi
[ "$offline" -eq 1 ] && build+=(--offline)

echo "==> building the plugin packages"
built_lines=$("${rerank_kit[@]}" "${build[@]}")  # path and identity of each package, one per line
mapfile -t built <<< "$built_lines"
packages=()
for ((i = 0; i < ${#built[@]}; i += 2)); do packages+=("${built[i]}"); done
if [ -n "$public_key" ]; then
  for package in "${packages[@]}"; do "${rerank_kit[@]}" verify-dify "$package" --public-key "$public_key"; done
fi

if [ -n "$dify_docker" ]; then
  env_file="$dify_docker/.env"
  compose="$dify_docker/docker-compose.yaml"
  [ -f "$compose" ] || { echo "$dify_docker has no docker-compose.yaml: pass Dify's docker/ folder" >&2; exit 1; }
  [ -f "$env_file" ] || { echo "$env_file is missing: copy .env.example to .env first (Dify's setup step)" >&2; exit 1; }
  backup="$env_file.bak-$(date +%Y%m%d%H%M%S)"
  cp "$env_file" "$backup"
  pass_env=0
  if [ -n "$public_key" ]; then
    # Trust the public key: copied where the daemon container reads it, listed in the daemon's settings.
    key_name=$(basename "$public_key")
    mkdir -p "$dify_docker/$keys_dir"
    cp "$public_key" "$dify_docker/$keys_dir/$key_name"
    keys=$(env_value "$env_file" THIRD_PARTY_SIGNATURE_VERIFICATION_PUBLIC_KEYS)
    case ",$keys," in
      *",$keys_in_container/$key_name,"*) ;;
      ",,") keys="$keys_in_container/$key_name" ;;
      *) keys="$keys,$keys_in_container/$key_name" ;;
    esac
    set_env "$env_file" THIRD_PARTY_SIGNATURE_VERIFICATION_ENABLED true
    set_env "$env_file" THIRD_PARTY_SIGNATURE_VERIFICATION_PUBLIC_KEYS "$keys"
    echo "==> copied $public_key to $dify_docker/$keys_dir/ and set THIRD_PARTY_SIGNATURE_VERIFICATION_ENABLED=true,"
    echo "    THIRD_PARTY_SIGNATURE_VERIFICATION_PUBLIC_KEYS=$keys in $env_file (backup: $backup)"
    if [ "$(env_value "$env_file" FORCE_VERIFYING_SIGNATURE)" = "false" ]; then
      echo "    note: FORCE_VERIFYING_SIGNATURE=false is still set there (it turns checks off for every plugin);"
      echo "    with signed packages you can set it back to true"
    fi
    # Dify's compose file lists plugin_daemon's variables one by one: pass these two through if it does not.
    grep -q THIRD_PARTY_SIGNATURE_VERIFICATION_ENABLED "$compose" || pass_env=1
  else
    set_env "$env_file" FORCE_VERIFYING_SIGNATURE false
    echo "==> set FORCE_VERIFYING_SIGNATURE=false in $env_file (backup: $backup; --sign avoids this)"
  fi
  extra_hosts=0
  [ "$(uname -s)" = "Linux" ] && extra_hosts=1
  override="$dify_docker/docker-compose.override.yaml"
  if [ "$extra_hosts" -eq 1 ] || [ "$pass_env" -eq 1 ]; then
    if [ -e "$override" ] && [ "$(head -n 1 "$override")" != "$marker" ]; then
      echo "==> $override is not ours: make sure its plugin_daemon service has"
      [ "$extra_hosts" -eq 1 ] && echo "      extra_hosts: [\"host.docker.internal:host-gateway\"]"
      [ "$pass_env" -eq 1 ] && echo "      environment: THIRD_PARTY_SIGNATURE_VERIFICATION_ENABLED and _PUBLIC_KEYS from .env"
    else
      {
        echo "$marker: plugins reach a server on the Docker host;"
        echo "# the daemon reads the third-party signature settings from .env."
        echo "services:"
        echo "  plugin_daemon:"
        if [ "$extra_hosts" -eq 1 ]; then
          echo "    extra_hosts:"
          echo "      - \"host.docker.internal:host-gateway\""
        fi
        if [ "$pass_env" -eq 1 ]; then
          echo "    environment:"
          echo "      THIRD_PARTY_SIGNATURE_VERIFICATION_ENABLED: \${THIRD_PARTY_SIGNATURE_VERIFICATION_ENABLED:-false}"
          echo "      THIRD_PARTY_SIGNATURE_VERIFICATION_PUBLIC_KEYS: \${THIRD_PARTY_SIGNATURE_VERIFICATION_PUBLIC_KEYS:-}"
        fi
      } > "$override"
      echo "==> wrote $override"
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

if [ -n "$public_key" ]; then
  refused="\"plugin verification failed\" means the running plugin_daemon does not trust $public_key yet"
else
  refused="\"bad signature\" / \"plugin verification failed\" means FORCE_VERIFYING_SIGNATURE is still true in the running containers"
fi
cat <<EOF

Next, in Dify:
  1. Plugins -> Install plugin -> Local package file: upload
$(printf '       %s\n' "${packages[@]}")
     (the model provider, and the workflow Rerank tool if you want it; $refused:
     see docs/dify.md).
  2. Settings -> Model Provider -> Local Reranker (rerank-kit) -> Add Model:
       Model Name  the model the server serves (e.g. BAAI/bge-reranker-v2-m3)
       Server URL  http://host.docker.internal:8086  (Dify in Docker, server on this host)
       API Key     the server's RERANK_API_KEY, or empty
       Timeout     60 s by default: raise it when reranking many chunks on CPU
  3. Pick it as the Rerank Model of a knowledge base or of a Knowledge Retrieval node; in a workflow, add
     the Rerank tool (Tools -> rerank-kit tools; authorize it with the same server URL and key).
See docs/dify.md for troubleshooting.
EOF
