"""The offline .difypkg's wheels (rerank_kit/commands/wheels.py, `rerank-kit package-dify --offline`): one wheel
per pin and platform, requirements that install from them only, the size limit, the cache, pip's reason when a
wheel cannot be fetched, the validator's rules for an index-less install, and the platforms' manylinux tags.
Installed and run as Dify's daemon does: tests/e2e/dify/test_offline_package.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from rerank_kit import cli
from rerank_kit.commands import difypkg
from rerank_kit.commands.wheels import (
    MIB,
    WHEELS_DIR,
    Offline,
    Platform,
    WheelError,
    manifest_platforms,
    normalise,
    requirement_pins,
)
from tests.support import REPO_ROOT

UNREACHABLE_INDEX = "http://127.0.0.1:9/simple"  # the discard port: nothing answers
TARGETS = manifest_platforms(yaml.safe_load((REPO_ROOT / "manifest.yaml").read_bytes()))  # the default platforms
DIFY_API_SOURCE_DEFAULT = 15 * MIB  # PLUGIN_MAX_PACKAGE_SIZE of Dify's api when not set (docker sets 50 MiB)


@pytest.fixture(scope="module")
def pins() -> dict[str, str | None]:
    return requirement_pins((REPO_ROOT / "dify_plugin" / "requirements.txt").read_text(encoding="utf-8"))


def wheel_files(package: difypkg.Package) -> list[str]:
    return [name.removeprefix(WHEELS_DIR) for name in package.files if name.startswith(WHEELS_DIR)]


def test_each_pin_has_one_wheel_per_platform_and_shared_wheels_once(
        offline_package: difypkg.Package, pins: dict[str, str | None]) -> None:
    platforms: dict[tuple[str, str], list[str]] = {}
    for wheel in wheel_files(offline_package):
        name, version, *_, platform_tag = wheel.removesuffix(".whl").split("-")
        platforms.setdefault((normalise(name), version), []).append(platform_tag)
    assert set(platforms) == set(pins.items())
    binary = {name for (name, _), tags in platforms.items() if tags != ["any"]}
    assert {"gevent", "greenlet", "pydantic_core", "tiktoken"} <= binary
    for (name, _), tags in platforms.items():
        if name in binary:  # exactly one wheel for each machine
            assert sorted("aarch64" in tag for tag in tags) == [False, True], (name, tags)


def test_requirements_install_only_from_the_wheels(offline_package: difypkg.Package) -> None:
    text = difypkg.read_package(offline_package.path)["requirements.txt"].decode()
    options = [line for line in text.splitlines() if line.startswith("-")]
    assert options == ["--no-index", f"--find-links=./{WHEELS_DIR}"]
    assert text.endswith((REPO_ROOT / "dify_plugin" / "requirements.txt").read_text(encoding="utf-8"))


def test_the_package_is_named_for_its_platforms_and_fits_difys_default_limit(
        offline_package: difypkg.Package) -> None:
    assert offline_package.path.name == "local_reranker-0.1.0-offline-amd64-arm64.difypkg"
    assert offline_package.path.stat().st_size < difypkg.MAX_UNCOMPRESSED_BYTES
    assert offline_package.uncompressed < difypkg.MAX_UNCOMPRESSED_BYTES


def test_the_default_platforms_are_linux_x86_64_and_aarch64() -> None:
    assert [p.tag for p in TARGETS] == ["manylinux_2_28_x86_64", "manylinux_2_28_aarch64"]


def test_a_second_build_comes_from_the_cache_and_reports_its_size(
        offline_package: difypkg.Package, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    for name, value in {"PIP_INDEX_URL": UNREACHABLE_INDEX, "PIP_CONFIG_FILE": os.devnull, "PIP_RETRIES": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    assert cli.main(["package-dify", "--model", "--offline", "-o", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    path = Path(out.split()[0])
    assert path.read_bytes() == offline_package.path.read_bytes()
    assert err.count("from the cache") == 2
    size = path.stat().st_size
    assert f"{path.name}: {size} bytes ({size / MIB:.1f} MiB), {offline_package.uncompressed} bytes uncompressed" in err


def test_over_the_limit_is_refused_with_the_number_and_one_platform_fits(
        offline_package: difypkg.Package, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    limit = str(DIFY_API_SOURCE_DEFAULT)
    assert cli.main(["package-dify", "--model", "--offline", "-o", str(tmp_path), "--max-size", limit]) == 1
    err = capsys.readouterr().err
    assert f"uncompressed size {offline_package.uncompressed} bytes" in err and f"exceeds {limit}" in err
    assert "fewer platforms (--platform)" in err
    assert not list(tmp_path.glob("*.difypkg"))
    assert cli.main(["package-dify", "--model", "--offline", "--platform", "manylinux_2_28_x86_64", "-o",
                     str(tmp_path), "--max-size", limit]) == 0
    one = difypkg.inspect(Path(capsys.readouterr().out.split()[0]))
    assert one.path.name == "local_reranker-0.1.0-offline-amd64.difypkg"
    assert not [name for name in one.files if "aarch64" in name]


def test_wheels_that_cannot_be_fetched_fail_with_pips_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"PIP_INDEX_URL": UNREACHABLE_INDEX, "PIP_CONFIG_FILE": os.devnull, "PIP_RETRIES": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    offline = Offline((Platform.parse("manylinux_2_28_x86_64"),), tmp_path / "empty-cache")
    with pytest.raises(WheelError, match=r"could not download the wheels for manylinux_2_28_x86_64:\n(.|\n)*"
                                         r"No matching distribution found"):
        difypkg.build(tmp_path / "dist", offline=offline)
    assert not (tmp_path / "dist").exists()


@pytest.mark.parametrize(("tamper", "message"), [
    (lambda files: {n: d for n, d in files.items() if not n.startswith(f"{WHEELS_DIR}gevent-")},
     "pins gevent==26.9.0, which has no wheel in wheels/"),
    (lambda files: {**files, "requirements.txt": files["requirements.txt"].replace(b"--no-index\n", b"")},
     "requirements.txt needs the line '--no-index'"),
    (lambda files: {**files, "requirements.txt": files["requirements.txt"] + b"socksio>=1\n"},
     "socksio must be pinned with =="),
    (lambda files: {**files, f"{WHEELS_DIR}notes.txt": b""}, "wheels/notes.txt is not a wheel"),
])
def test_the_validator_checks_what_an_index_less_install_needs(offline_package: difypkg.Package, tamper,
                                                               message: str) -> None:
    files = difypkg.read_package(offline_package.path)
    difypkg.validate(files)  # options are not requirement names; wheels are not Python sources
    with pytest.raises(difypkg.PackageError, match=message):
        difypkg.validate(tamper(files))


def test_platforms_expand_to_every_compatible_manylinux_tag(capsys: pytest.CaptureFixture) -> None:
    arm = Platform.parse("manylinux_2_28_aarch64").pip_platforms()
    assert {"manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"} <= set(arm)
    assert "manylinux1_aarch64" not in arm and "manylinux_2_29_aarch64" not in arm
    assert {"manylinux2010_x86_64", "manylinux1_x86_64"} <= set(Platform.parse("manylinux_2_28_x86_64").pip_platforms())
    with pytest.raises(SystemExit):
        cli.main(["package-dify", "--offline", "--platform", "win_amd64"])
    assert "not a platform like manylinux_2_28_x86_64" in capsys.readouterr().err
    assert cli.main(["package-dify", "--platform", "manylinux_2_28_x86_64"]) == 2
