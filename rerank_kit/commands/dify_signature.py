"""Dify plugin signatures, by the daemon's rule, so a self-built .difypkg installs with verification on.

Dify's plugin daemon (`plugin_packager/signer/withkey`, `decoder/verifier.go`) signs and checks a package so:
the zip's file entries are walked in archive order (directories skipped) and the SHA-256 digest of each
file's bytes is appended to a buffer; the signer writes `.verification.dify.json` last into the zip, so on
verification it is one more walked file; then the decimal Unix time is appended. The signature is RSA
PKCS#1 v1.5 over SHA-256 of that buffer; the zip comment is `{"signature": base64, "time": unix}`. The
daemon accepts the official key, or with THIRD_PARTY_SIGNATURE_VERIFICATION_ENABLED=true any key listed in
THIRD_PARTY_SIGNATURE_VERIFICATION_PUBLIC_KEYS.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import time
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

KEY_BITS = 4096  # what `dify signature generate` makes
VERIFICATION_FILE = ".verification.dify.json"
# A third-party signer is "community"; "langgenius" is refused by newer Dify without the official key.
AUTHORIZED_CATEGORY = "community"

# The daemon's built-in official key (dify-plugin-daemon `internal/core/license/public_key/PUBLIC_KEY.pem`,
# Apache-2.0): the daemon always trusts it, so `verify-dify` does too.
OFFICIAL_PUBLIC_KEY = b"""\
-----BEGIN RSA PUBLIC KEY-----
MIICCgKCAgEAwUY1cndCmqclHHlCn/PVB011n0m+vmXT2M/QWbViM/2oqO2S5lXl
VYwZjbN+r3xjUxnzCK6YC7fCI0CXJ69RPTpfRc9meV0TPb50g01kJI6HWL+SziZs
i+Mmul5ji7W4ebpOUNUPuBgFFfzrOv4BSO6tWVfpiqFTdfF3o2XT3FUja2rMCSQO
dsGvuhX5/YYAnOH4suxGo+nWda/QC+ohM4z8yLuM6fo7QPmkjTXN+jr7+RZ6JA7g
6XT7TdMK8oJcqMm15E0pRmgfNNLvqSeVcVM5OgmteTpSn7ekSdCMOpai3Cnc4zOa
PWSViiHTDu9AIoDbSBRQbvOaQ339eXOlHnomvg6WK6hw3hYoE+ASkv5qK9BwuWqn
xdUQ99qJ04eNTGjqCo65P9DKzpDb5BT5cxg40Utue0MbuN6pLPwhqkvnVmExuykw
aLQmTwnLODOD4gc5UU1dUeSUOxQeSoL8zSqL809ZV89B31jYOSFqcKEbyhoKaen3
dQSUFxEIca7Juj4E4tC+V1RsU2GSaVRCKEtJ4RBnDkQvB4aRBL+zpc26aIBKb3G3
0a9BWRvXRy+gr/qx8fDJgOuF23j1WXEDVsNtK6vpHGQkDUmsBsE2U+Sag9l2Vnq1
hrqLbjz2PPOHsBkg09IlM6SNr2NaEWvVJnC/szW8EQ51QBz8XJOnEmUCAwEAAQ==
-----END RSA PUBLIC KEY-----
"""


class SignatureError(Exception):
    """A key or package could not be read, or a package carries no valid signature."""


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path


def generate_key_pair(stem: Path) -> KeyPair:
    """Write `<stem>.private.pem` (PKCS#1, mode 0600) and `<stem>.public.pem`, as `dify signature generate`."""
    pair = KeyPair(stem.with_name(f"{stem.name}.private.pem"), stem.with_name(f"{stem.name}.public.pem"))
    existing = [str(p) for p in (pair.private, pair.public) if p.exists()]
    if existing:
        raise SignatureError(f"refusing to overwrite {', '.join(existing)}: choose another name")
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    stem.parent.mkdir(parents=True, exist_ok=True)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
    pair.private.touch(mode=0o600)
    pair.private.write_bytes(private_pem)
    pair.public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1))
    return pair


def _pem(path: Path, block: str) -> bytes:
    """The key file's bytes, if it holds exactly one PEM block of the type the daemon's loader demands."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SignatureError(f"{path}: {error.strerror}") from None
    text = data.decode("ascii", "replace").strip()
    if not (text.startswith(f"-----BEGIN {block}-----") and text.endswith(f"-----END {block}-----")):
        raise SignatureError(f"{path}: Dify reads only a PEM '{block}' block (PKCS#1, as `rerank-kit dify-keygen` "
                             "and `dify signature generate` write it)")
    return data


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(_pem(path, "RSA PRIVATE KEY"), password=None)
    except (ValueError, TypeError) as error:
        raise SignatureError(f"{path}: not an unencrypted RSA private key ({error})") from None
    assert isinstance(key, rsa.RSAPrivateKey)  # an "RSA PRIVATE KEY" block holds nothing else
    return key


def load_public_key(path: Path) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(_pem(path, "RSA PUBLIC KEY"))
    except ValueError as error:
        raise SignatureError(f"{path}: not an RSA public key ({error})") from None
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def _signed_data(file_contents: Iterable[bytes], signed_at: int) -> bytes:
    return b"".join(hashlib.sha256(data).digest() for data in file_contents) + str(signed_at).encode()


def sign(package: bytes, private_key: rsa.RSAPrivateKey, signed_at: int | None = None) -> bytes:
    """The package with `.verification.dify.json` appended and the signature in the zip comment.

    Entries keep their order, names, dates and bytes, so the unsigned checks (layout, checksum) still hold.
    """
    signed_at = int(time.time()) if signed_at is None else signed_at
    verification = json.dumps({"authorized_category": AUTHORIZED_CATEGORY}, separators=(",", ":")).encode()
    contents: list[bytes] = []
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as source, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        entries = [info for info in source.infolist() if not info.is_dir()]
        if not entries or VERIFICATION_FILE in (info.filename for info in entries):
            raise SignatureError("only an unsigned, non-empty package can be signed")
        for info in entries:
            contents.append(source.read(info))
            out.writestr(info, contents[-1])
        last = zipfile.ZipInfo(VERIFICATION_FILE, entries[-1].date_time)  # dated like the package's files
        last.compress_type, last.create_system, last.external_attr = zipfile.ZIP_DEFLATED, 3, 0o644 << 16
        out.writestr(last, verification)
        contents.append(verification)
        signature = private_key.sign(_signed_data(contents, signed_at), padding.PKCS1v15(), hashes.SHA256())
        out.comment = json.dumps({"signature": base64.b64encode(signature).decode(), "time": signed_at},
                                 separators=(",", ":")).encode()
    return buffer.getvalue()


@dataclass(frozen=True)
class Signature:
    signed_at: int
    authorized_category: str | None  # from .verification.dify.json; None for packages signed before it existed
    key: str  # the name of the public key that verified it


def official_public_key() -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(OFFICIAL_PUBLIC_KEY)
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def public_keys(paths: Iterable[Path]) -> dict[str, rsa.RSAPublicKey]:
    """Public keys by their file name, as verify() takes them."""
    return {str(path): load_public_key(path) for path in paths}


def verify(package: Path, keys: Mapping[str, rsa.RSAPublicKey]) -> Signature:
    """Which of `keys` (name -> key) signed `package`, by the daemon's rule; SignatureError when none did."""
    if not keys:
        raise SignatureError("no public key to verify with")
    try:
        with zipfile.ZipFile(package) as archive:
            comment = archive.comment
            entries = [info for info in archive.infolist() if not info.is_dir()]
            contents = [archive.read(info) for info in entries]
    except (OSError, zipfile.BadZipFile) as error:
        raise SignatureError(f"{package}: not a readable .difypkg ({error})") from None
    try:
        fields = json.loads(comment)
        signature, signed_at = base64.b64decode(fields["signature"], validate=True), int(fields["time"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise SignatureError(f"{package} is not signed (its zip comment holds no signature)") from None
    names = [info.filename for info in entries]
    category = (json.loads(contents[names.index(VERIFICATION_FILE)]).get("authorized_category")
                if VERIFICATION_FILE in names else None)
    data = _signed_data(contents, signed_at)
    for name, key in keys.items():
        try:
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            continue
        return Signature(signed_at, category, name)
    raise SignatureError(f"{package}: the signature matches none of {', '.join(keys)} "
                         "(the package was changed after signing, or signed with another key)")
