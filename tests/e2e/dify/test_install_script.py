"""scripts/install_dify.sh on a scratch copy of Dify's docker/ folder (no Docker here: it is not recreated).

With --sign it signs both packages, copies the public key where Dify's plugin_daemon reads it
(docker/volumes/plugin_daemon -> /app/storage), trusts it in .env and passes the two settings through a
compose override; without it, it falls back to FORCE_VERIFYING_SIGNATURE=false.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import pytest
import yaml

from rerank_kit.commands import dify_signature
from tests.support import REPO_ROOT
from tests.support.server_process import free_port

SCRIPT = REPO_ROOT / "scripts" / "install_dify.sh"
# The parts of Dify's docker/docker-compose.yaml that matter here: plugin_daemon's explicit variables.
COMPOSE = """services:
  plugin_daemon:
    environment:
      FORCE_VERIFYING_SIGNATURE: ${FORCE_VERIFYING_SIGNATURE:-true}
    volumes:
      - ./volumes/plugin_daemon:/app/storage
"""


@pytest.fixture
def dify_docker(tmp_path: Path) -> Path:
    docker = tmp_path / "dify" / "docker"
    docker.mkdir(parents=True)
    (docker / "docker-compose.yaml").write_text(COMPOSE)
    (docker / ".env").write_text("SECRET_KEY=abc\nFORCE_VERIFYING_SIGNATURE=true\n")
    return docker


def install(*args: str) -> subprocess.CompletedProcess[str]:
    dead = f"http://127.0.0.1:{free_port()}"  # the server check is reported, not fatal
    result = subprocess.run([str(SCRIPT), "--check", dead, *args], capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def env_of(docker: Path) -> dict[str, str]:
    lines = (docker / ".env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_sign_trusts_our_key_instead_of_turning_checks_off(dify_docker: Path, tmp_path: Path) -> None:
    key = tmp_path / "keys" / "ours.private.pem"  # absent: the script makes the pair
    result = install("--dify-docker", str(dify_docker), "--sign", str(key), "-o", str(tmp_path / "dist"))
    public = tmp_path / "keys" / "ours.public.pem"
    packages = sorted((tmp_path / "dist").glob("*.signed.difypkg"))
    assert [p.name for p in packages] == ["local_reranker-0.1.0.signed.difypkg",
                                          "rerank_kit_tools-0.1.0.signed.difypkg"]
    for package in packages:
        dify_signature.verify(package, dify_signature.public_keys([public]))
        assert str(package) in result.stdout
    copied = dify_docker / "volumes" / "plugin_daemon" / "public_keys" / "ours.public.pem"
    assert copied.read_bytes() == public.read_bytes()
    env = env_of(dify_docker)
    assert env["THIRD_PARTY_SIGNATURE_VERIFICATION_ENABLED"] == "true"
    assert env["THIRD_PARTY_SIGNATURE_VERIFICATION_PUBLIC_KEYS"] == "/app/storage/public_keys/ours.public.pem"
    assert env["FORCE_VERIFYING_SIGNATURE"] == "true" and env["SECRET_KEY"] == "abc"
    daemon = yaml.safe_load((dify_docker / "docker-compose.override.yaml").read_text())["services"]["plugin_daemon"]
    assert daemon["environment"] == {
        "THIRD_PARTY_SIGNATURE_VERIFICATION_ENABLED": "${THIRD_PARTY_SIGNATURE_VERIFICATION_ENABLED:-false}",
        "THIRD_PARTY_SIGNATURE_VERIFICATION_PUBLIC_KEYS": "${THIRD_PARTY_SIGNATURE_VERIFICATION_PUBLIC_KEYS:-}"}
    assert ("extra_hosts" in daemon) == (platform.system() == "Linux")
    assert list(dify_docker.glob(".env.bak-*"))
    assert "docker compose up -d" in result.stdout

    install("--dify-docker", str(dify_docker), "--sign", str(key), "-o", str(tmp_path / "dist"))  # again
    assert env_of(dify_docker)["THIRD_PARTY_SIGNATURE_VERIFICATION_PUBLIC_KEYS"] == \
        "/app/storage/public_keys/ours.public.pem"


def test_a_second_key_is_added_to_the_trusted_list(dify_docker: Path, tmp_path: Path) -> None:
    with (dify_docker / ".env").open("a") as env:
        env.write("THIRD_PARTY_SIGNATURE_VERIFICATION_PUBLIC_KEYS=/app/storage/public_keys/theirs.public.pem\n")
    install("--dify-docker", str(dify_docker), "--sign", str(tmp_path / "ours.private.pem"), "-o", str(tmp_path))
    assert env_of(dify_docker)["THIRD_PARTY_SIGNATURE_VERIFICATION_PUBLIC_KEYS"] == (
        "/app/storage/public_keys/theirs.public.pem,/app/storage/public_keys/ours.public.pem")


def test_without_sign_it_turns_verification_off_as_before(dify_docker: Path, tmp_path: Path) -> None:
    install("--dify-docker", str(dify_docker), "-o", str(tmp_path / "dist"))
    assert env_of(dify_docker)["FORCE_VERIFYING_SIGNATURE"] == "false"
    assert "THIRD_PARTY_SIGNATURE_VERIFICATION_ENABLED" not in env_of(dify_docker)
    assert sorted(p.name for p in (tmp_path / "dist").iterdir()) == ["local_reranker-0.1.0.difypkg",
                                                                     "rerank_kit_tools-0.1.0.difypkg"]


@pytest.mark.parametrize(("args", "message"), [
    (["--sign"], "--sign needs a value"),
    (["--sign", "key.pem"], "--sign takes NAME.private.pem"),
    (["--frobnicate"], "unknown option: --frobnicate"),
])
def test_bad_options_are_refused(args: list[str], message: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run([str(SCRIPT), "--check", dead, *args], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 2 and message in result.stderr, result.stderr
