"""The package as bytes: the zip the Go packager writes, the daemon's refusals when reading one, its identity."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Mapping
from pathlib import Path

import yaml

from rerank_kit.commands import wheels
from rerank_kit.commands.difypkg.errors import PackageError

MAX_UNCOMPRESSED_BYTES = 50 * wheels.MIB  # Dify's default PLUGIN_MAX_PACKAGE_SIZE (daemon: MAX_PLUGIN_PACKAGE_SIZE)
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same sources give the same bytes


def checksum(files: Mapping[str, bytes]) -> str:
    """The daemon's package checksum: sha256 over sorted paths of sha256(path) + sha256(content)."""
    digest = b"".join(hashlib.sha256(p.encode()).digest() + hashlib.sha256(files[p]).digest() for p in sorted(files))
    return hashlib.sha256(digest).hexdigest()


def identity(files: Mapping[str, bytes]) -> str:
    manifest = yaml.safe_load(files["manifest.yaml"])
    return f"{manifest['author']}/{manifest['name']}:{manifest['version']}@{checksum(files)}"


def _too_large(what: str, size: int, max_size: int, files: Mapping[str, bytes]) -> PackageError:
    largest = sorted(files, key=lambda p: len(files[p]), reverse=True)[:5]
    advice = ("; an offline package for fewer platforms (--platform) is smaller, or raise Dify's "
              "PLUGIN_MAX_PACKAGE_SIZE and --max-size" if any(p.startswith(wheels.WHEELS_DIR) for p in files) else "")
    return PackageError([f"{what} {size} bytes ({size / wheels.MIB:.1f} MiB) exceeds {max_size}; largest: "
                         + ", ".join(f"{p} ({len(files[p])} bytes)" for p in largest) + advice])


def zip_bytes(files: Mapping[str, bytes], max_size: int = MAX_UNCOMPRESSED_BYTES) -> bytes:
    """The package, refused when it or its content is over `max_size` (Dify checks the upload and the content)."""
    total = sum(len(data) for data in files.values())
    if total > max_size:
        raise _too_large("uncompressed size", total, max_size, files)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(files):
            info = zipfile.ZipInfo(path, ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so the permission bits below mean what they say
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[path])
    if buffer.tell() > max_size:  # wheels hardly compress: the zip can outgrow its content
        raise _too_large("package size", buffer.tell(), max_size, files)
    return buffer.getvalue()


def read_package(path: Path, max_size: int = MAX_UNCOMPRESSED_BYTES) -> dict[str, bytes]:
    """The files of a .difypkg, refusing what the daemon refuses (unsafe paths, over-size)."""
    problems, files = [], {}
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        if sum(info.file_size for info in infos) > max_size:
            problems.append(f"uncompressed size exceeds {max_size} bytes")
        for info in infos:
            name = info.filename
            if "\\" in name or name.startswith("/") or ".." in name.split("/"):
                problems.append(f"unsafe path in package: {name!r}")
            elif info.is_dir():
                problems.append(f"directory entry in package: {name!r} (the Go packager writes files only)")
            else:
                files[name] = archive.read(info)
    if problems:
        raise PackageError(problems)
    return files
