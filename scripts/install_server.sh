#!/usr/bin/env bash
# Install the rerank-kit server (Linux, macOS) into a virtual environment, with an env file and a start
# script; optionally a systemd user service (Linux).
#
#   scripts/install_server.sh [--prefix DIR] [--python PYTHON] [--model MODEL] [--port PORT] [--gpu] [--systemd]
#
# Versions come from the lock (requirements/server-py311.lock), the set the test suite passed with.
# torch: the locked version, the CPU build on Linux unless --gpu is given (the default PyPI build is CUDA,
# several GB); on macOS the default build (with MPS). TORCH_SPEC overrides it (e.g. TORCH_SPEC=torch==2.13.0).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
prefix="${HOME}/.local/share/rerank-kit"
python=""
model="BAAI/bge-reranker-v2-m3"
port=8086
gpu=0
systemd=0

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --python) python="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --gpu) gpu=1; shift ;;
    --systemd) systemd=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done

if [ -z "$python" ]; then
  for candidate in python3.11 python3.12 python3; do  # the lock is made on 3.11
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      python="$candidate"; break
    fi
  done
fi
[ -n "$python" ] || { echo "rerank-kit needs Python >= 3.11; pass --python /path/to/python3.11" >&2; exit 1; }

echo "==> virtual environment in $prefix/venv ($("$python" --version))"
mkdir -p "$prefix/bin"
"$python" -m venv "$prefix/venv"
pip=("$prefix/venv/bin/python" -m pip install --disable-pip-version-check -q)

lock="$repo/requirements/server-py311.lock"
torch_version=$(sed -n 's/^torch==\([^+ ]*\).*/\1/p' "$lock")
constraints="$prefix/constraints.txt"
grep -v '^torch==' "$lock" > "$constraints"  # torch is chosen per platform below, at the locked version
if [ -n "${TORCH_SPEC:-}" ]; then
  "${pip[@]}" "$TORCH_SPEC"
elif [ "$(uname -s)" = "Linux" ] && [ "$gpu" -eq 0 ]; then
  "${pip[@]}" "torch==$torch_version" --index-url https://download.pytorch.org/whl/cpu
else
  "${pip[@]}" "torch==$torch_version"
fi
echo "==> rerank-kit and its locked dependencies"
# setuptools builds in $repo/build by default and never removes a module the checkout has since dropped: a
# re-run after a pull would install it again. Build in a fresh folder instead (the checkout stays untouched).
build_dir=$(mktemp -d)
trap 'rm -rf "$build_dir"' EXIT
printf '[build]\nbuild_base = %s/build\n[egg_info]\negg_base = %s\n' "$build_dir" "$build_dir" > "$build_dir/setup.cfg"
DIST_EXTRA_CONFIG="$build_dir/setup.cfg" "${pip[@]}" -c "$constraints" "${repo}[server]"

env_file="$prefix/server.env"
if [ ! -f "$env_file" ]; then
  sed -e "s|^RERANK_MODEL=.*|RERANK_MODEL=$model|" -e "s|^RERANK_PORT=.*|RERANK_PORT=$port|" \
    "$repo/conf/server.env.example" > "$env_file"
  echo "==> wrote $env_file"
else
  echo "==> kept the existing $env_file"
  port=$(sed -n 's/^RERANK_PORT=//p' "$env_file" | tail -n 1)  # the file's port, not --port, is served
  port=${port:-8086}
fi

launcher="$prefix/bin/rerank-kit-server"
cat > "$launcher" <<LAUNCH
#!/usr/bin/env bash
set -a; . "$env_file"; set +a
exec "$prefix/venv/bin/rerank-kit" serve "\$@"
LAUNCH
chmod +x "$launcher"

if [ "$systemd" -eq 1 ]; then
  unit_dir="${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user"
  mkdir -p "$unit_dir"
  cat > "$unit_dir/rerank-kit.service" <<UNIT
[Unit]
Description=rerank-kit reranker server
After=network-online.target

[Service]
ExecStart=$launcher
Restart=on-failure

[Install]
WantedBy=default.target
UNIT
  echo "==> wrote $unit_dir/rerank-kit.service; enable it with:"
  echo "    systemctl --user daemon-reload && systemctl --user enable --now rerank-kit"
fi

cat <<DONE

Installed. Start the server with:
    $launcher
Settings live in $env_file (RERANK_MODEL: a hub id, or a local folder when offline).
Check it:  curl -s http://127.0.0.1:$port/health && $prefix/venv/bin/rerank-kit check http://127.0.0.1:$port
From Dify or RAGFlow in Docker, use http://host.docker.internal:$port as the server URL.
DONE
