#!/usr/bin/env bash
# A local STAND-IN for the base image python:3.11-slim, for building conf/Dockerfile where no image registry is
# reachable (CI has no Docker Hub): Debian bookworm (minbase) assembled with debootstrap from deb.debian.org, with
# Debian's own Python 3.11, pip and venv, committed into buildah's local storage as
# docker.io/library/python:3.11-slim, so the Dockerfile's unchanged `FROM python:3.11-slim` resolves to it when
# built with `buildah bud --pull-never`. It is not the official image: Python is Debian's /usr/bin/python3.11
# (not a source build in /usr/local), pip is Debian's 23.0.1 with EXTERNALLY-MANAGED removed (so `pip install`
# works system-wide as in the official image; packages land in /usr/local/lib/python3.11/dist-packages and their
# scripts in /usr/local/bin).
#
#   tests/deployment/stand_in_base.sh [--force]     (root; needs buildah and debootstrap)
#
# Idempotent: does nothing when the image is already in buildah's storage, unless --force. Honours buildah's
# STORAGE_DRIVER, and DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

image="docker.io/library/python:3.11-slim"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
force=0
[ "${1:-}" = "--force" ] && force=1

for tool in buildah debootstrap; do
  command -v "$tool" >/dev/null || { echo "stand_in_base.sh: $tool is missing (apt-get install buildah debootstrap)" >&2; exit 2; }
done
if [ "$force" = 0 ] && buildah inspect --type image "$image" >/dev/null 2>&1; then
  echo "stand_in_base.sh: $image is already in buildah's storage"
  exit 0
fi

work=$(mktemp -d /var/tmp/stand-in-base.XXXXXX)
container=""
cleanup() {
  [ -n "$container" ] && buildah rm "$container" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
rootfs="$work/rootfs"

echo "stand_in_base.sh: debootstrap bookworm (minbase) from $mirror"
debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates \
  bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

# What the official image gives: `python`, `python3`, `pip`, `pip3` on PATH, and pip installs system-wide.
rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
[ -e "$rootfs/usr/bin/pip" ] || ln -s pip3 "$rootfs/usr/bin/pip"
for command in python python3 pip pip3; do
  chroot "$rootfs" /bin/sh -c "command -v $command >/dev/null" || { echo "stand_in_base.sh: no $command" >&2; exit 1; }
done
# Slim: no package lists, caches, logs, docs or man pages (the official Debian slim images exclude them too).
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
  "$rootfs"/var/log/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
  "$rootfs"/tmp/* "$rootfs"/var/tmp/*
find "$rootfs/usr/lib/python3" "$rootfs/usr/lib/python3.11" -name __pycache__ -prune -exec rm -rf {} +
: >"$rootfs/etc/resolv.conf"
: >"$rootfs/etc/hostname"

container=$(buildah from --pull-never scratch)
mountpoint=$(buildah mount "$container")
tar -C "$rootfs" --numeric-owner --xattrs -cf - . | tar -C "$mountpoint" --numeric-owner --xattrs -xf -
buildah umount "$container" >/dev/null
buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
  --env PYTHON_VERSION="$(chroot "$rootfs" python3 -c 'import platform; print(platform.python_version())')" \
  --cmd python3 --os linux --arch "$(dpkg --print-architecture)" \
  --label org.opencontainers.image.description="stand-in for python:3.11-slim (Debian bookworm, debootstrap)" \
  "$container"
buildah commit --quiet --rm "$container" "$image" >/dev/null
container=""
echo "stand_in_base.sh: committed $image ($(buildah images --format '{{.Size}}' "$image"))"
