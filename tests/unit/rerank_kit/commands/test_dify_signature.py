"""Dify package signatures (`dify-keygen`, `package-dify --sign`, `verify-dify`) against Dify's own: the daemon's
officially signed package and official key, and the daemon's test key pair (../shared/reference/dify-signature/)."""

from __future__ import annotations

import io
import json
import stat
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from rerank_kit import cli
from rerank_kit.commands import dify_signature as signature
from rerank_kit.commands import difypkg
from tests.support import REPO_ROOT

REFERENCE = REPO_ROOT.parent / "shared" / "reference" / "dify-signature"
OFFICIAL_PACKAGE = REFERENCE / "langgenius-agent_0.0.14.difypkg"
OFFICIAL_KEY = REFERENCE / "official_public_key.pem"
TEST_PRIVATE = REFERENCE / "test_key_pair_1.private.pem"
TEST_PUBLIC = REFERENCE / "test_key_pair_1.public.pem"


@pytest.fixture(scope="module", autouse=True)
def reference_data() -> None:
    if not OFFICIAL_PACKAGE.is_file():
        pytest.fail(f"{REFERENCE} is missing: the signature tests need Dify's signed package and keys")


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, difypkg.Package]:
    """Both plugins, signed with the daemon's test key."""
    out = tmp_path_factory.mktemp("signed")
    key = signature.load_private_key(TEST_PRIVATE)
    return {plugin.name: difypkg.build(out, plugin=plugin, sign_key=key) for plugin in difypkg.PLUGINS}


def rewritten(package: Path, target: Path, change=lambda name, data: data, comment=None) -> Path:
    """A copy of `package` with each file's bytes passed through `change` (same order, same comment)."""
    with zipfile.ZipFile(package) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            out.writestr(info, change(info.filename, source.read(info)))
        out.comment = source.comment if comment is None else comment
    return target


def flip_one_byte(name: str, data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1]) if name == "manifest.yaml" else data


def test_dify_s_official_package_verifies_with_the_official_key() -> None:
    checked = signature.verify(OFFICIAL_PACKAGE, signature.public_keys([OFFICIAL_KEY]))
    assert checked.key == str(OFFICIAL_KEY) and checked.signed_at == 1744632035
    assert signature.official_public_key().public_numbers() == signature.load_public_key(OFFICIAL_KEY).public_numbers()


def test_one_changed_byte_or_time_breaks_the_official_signature(tmp_path: Path) -> None:
    keys = {"official": signature.official_public_key()}
    with pytest.raises(signature.SignatureError, match="matches none of official"):
        signature.verify(rewritten(OFFICIAL_PACKAGE, tmp_path / "byte.difypkg", flip_one_byte), keys)
    fields = json.loads(zipfile.ZipFile(OFFICIAL_PACKAGE).comment)
    later = json.dumps({**fields, "time": fields["time"] + 1}).encode()
    with pytest.raises(signature.SignatureError, match="matches none of official"):
        signature.verify(rewritten(OFFICIAL_PACKAGE, tmp_path / "time.difypkg", comment=later), keys)
    with pytest.raises(signature.SignatureError, match="is not signed"):
        signature.verify(rewritten(OFFICIAL_PACKAGE, tmp_path / "bare.difypkg", comment=b""), keys)


def test_verify_dify_trusts_the_official_key_and_the_keys_given(capsys: pytest.CaptureFixture,
                                                                signed: dict[str, difypkg.Package]) -> None:
    assert cli.main(["verify-dify", str(OFFICIAL_PACKAGE)]) == 0
    assert "signature OK (key: Dify's official key" in capsys.readouterr().out
    ours = str(signed["tool"].path)
    assert cli.main(["verify-dify", ours]) == 1  # only the official key: what a default Dify accepts
    assert "matches none of Dify's official key" in capsys.readouterr().err
    assert cli.main(["verify-dify", ours, "--public-key", str(TEST_PUBLIC)]) == 0
    out = capsys.readouterr().out
    assert f"key: {TEST_PUBLIC}" in out and "authorized category: community" in out


@pytest.mark.parametrize("plugin", [p.name for p in difypkg.PLUGINS])
def test_our_signed_packages_verify_with_our_key_and_fail_with_another(
        plugin: str, signed: dict[str, difypkg.Package], tmp_path: Path) -> None:
    package = signed[plugin]
    assert package.path.name.endswith(".signed.difypkg")
    checked = signature.verify(package.path, signature.public_keys([TEST_PUBLIC]))
    assert checked.authorized_category == signature.AUTHORIZED_CATEGORY
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    with pytest.raises(signature.SignatureError):
        signature.verify(package.path, {"official": signature.official_public_key(), "other": other})
    with pytest.raises(signature.SignatureError):
        signature.verify(rewritten(package.path, tmp_path / "changed.difypkg", flip_one_byte),
                         signature.public_keys([TEST_PUBLIC]))


def test_signing_keeps_the_package_and_appends_the_verification_file(signed: dict[str, difypkg.Package],
                                                                      tmp_path: Path) -> None:
    plain = difypkg.build(tmp_path, plugin=difypkg.TOOL)
    with zipfile.ZipFile(plain.path) as before, zipfile.ZipFile(signed["tool"].path) as after:
        names = [info.filename for info in after.infolist()]
        assert names == [info.filename for info in before.infolist()] + [signature.VERIFICATION_FILE]
        assert all(before.read(name) == after.read(name) for name in names[:-1])
        assert json.loads(after.read(signature.VERIFICATION_FILE)) == {"authorized_category": "community"}
    difypkg.inspect(signed["tool"].path)  # still a valid package
    with pytest.raises(signature.SignatureError, match="only an unsigned"):
        signature.sign(signed["tool"].path.read_bytes(), signature.load_private_key(TEST_PRIVATE))


def test_package_dify_sign_signs_both(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["package-dify", "--sign", str(TEST_PRIVATE), "-o", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    paths = [Path(p) for p in out.split()[::2]]
    assert [p.name for p in paths] == ["local_reranker-0.1.0.signed.difypkg", "rerank_kit_tools-0.1.0.signed.difypkg"]
    assert err.count(f"signed with {TEST_PRIVATE}") == 2
    for path in paths:
        assert cli.main(["verify-dify", str(path), "--public-key", str(TEST_PUBLIC)]) == 0


def test_dify_keygen_writes_a_4096_bit_pair_in_the_daemon_s_format(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["dify-keygen", str(tmp_path / "keys" / "ours")]) == 0
    private, public = map(Path, capsys.readouterr().out.split())
    assert private.read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")  # PKCS#1, what the daemon parses
    assert public.read_text().startswith("-----BEGIN RSA PUBLIC KEY-----")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert signature.load_private_key(private).key_size == signature.KEY_BITS == 4096
    assert cli.main(["dify-keygen", str(tmp_path / "keys" / "ours")]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err


def test_keys_the_daemon_cannot_read_are_refused_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spki = tmp_path / "spki.pem"
    spki.write_bytes(signature.load_public_key(TEST_PUBLIC).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    assert cli.main(["verify-dify", str(OFFICIAL_PACKAGE), "--public-key", str(spki)]) == 1
    assert "Dify reads only a PEM 'RSA PUBLIC KEY' block" in capsys.readouterr().err
    assert cli.main(["package-dify", "--tool", "--sign", str(TEST_PUBLIC), "-o", str(tmp_path)]) == 1
    assert "'RSA PRIVATE KEY' block" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.difypkg"))


def test_the_signed_time_is_part_of_the_signature(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.txt", b"a")
    path = tmp_path / "a.difypkg"
    key = signature.load_private_key(TEST_PRIVATE)
    path.write_bytes(signature.sign(buffer.getvalue(), key, signed_at=1_700_000_000))
    assert signature.verify(path, signature.public_keys([TEST_PUBLIC])).signed_at == 1_700_000_000
