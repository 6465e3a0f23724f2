"""Building a package: assemble the root, validate it, add the wheels (offline), zip, sign, and prove the file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from rerank_kit.commands import dify_signature, wheels
from rerank_kit.commands.difypkg.archive import MAX_UNCOMPRESSED_BYTES, identity, read_package, zip_bytes
from rerank_kit.commands.difypkg.checks import validate
from rerank_kit.commands.difypkg.root import MODEL, PluginSource, plugin_root_files
from rerank_kit.commands.vendor import REPO_ROOT


@dataclass(frozen=True)
class Package:
    path: Path
    identity: str  # author/name:version@checksum, as Dify names an installed package
    files: tuple[str, ...]
    uncompressed: int  # what the daemon compares with MAX_PLUGIN_PACKAGE_SIZE; the upload is path's size


def build(output_dir: Path, root: Path = REPO_ROOT, max_size: int = MAX_UNCOMPRESSED_BYTES,
          offline: wheels.Offline | None = None, plugin: PluginSource = MODEL,
          sign_key: RSAPrivateKey | None = None) -> Package:
    """Assemble, validate and write `<output_dir>/<name>-<version>.difypkg`; re-read it to prove it.

    `offline` adds the wheels: `<name>-<version>-offline-<arch>[-<arch>].difypkg`; `sign_key` signs it
    (`….signed.difypkg`, as `dify signature sign` names it) and the signature is verified before it is kept.
    """
    files = plugin_root_files(root, plugin)
    validate(files)  # the sources first: no download for a plugin that cannot work
    manifest = yaml.safe_load(files["manifest.yaml"])
    stem = f"{manifest['name']}-{manifest['version']}"
    if offline:
        platforms = offline.platforms or wheels.manifest_platforms(manifest)
        files = wheels.offline_files(files, platforms, str(manifest["meta"]["runner"]["version"]), offline.cache,
                                     offline.progress)
        validate(files)
        stem += "-offline-" + "-".join(dict.fromkeys(p.dify_arch for p in platforms))
    data = zip_bytes(files, max_size)
    if sign_key is not None:
        data = dify_signature.sign(data, sign_key)
        stem += ".signed"
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / f"{stem}.difypkg"
    path.write_bytes(data)
    if sign_key is not None:
        dify_signature.verify(path, {"the signing key": sign_key.public_key()})
    return inspect(path, max_size)


def inspect(path: Path, max_size: int = MAX_UNCOMPRESSED_BYTES) -> Package:
    """Validate an existing .difypkg as the daemon would and return its identity."""
    files = read_package(path, max_size)
    validate(files)
    return Package(path=path, identity=identity(files), files=tuple(files),
                   uncompressed=sum(map(len, files.values())))
