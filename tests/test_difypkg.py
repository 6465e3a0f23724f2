"""The .difypkg builder and validator: layout and identity as Dify's Go packager makes them, and the
daemon's validation rules, each failing with a clear message."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml

from rerank_kit import cli
from rerank_kit.commands import difypkg
from rerank_kit.commands.difypkg import PackageError

REPO_ROOT = Path(__file__).resolve().parent.parent
PLUGIN_ROOT_FILES = {"manifest.yaml", "main.py", "requirements.txt", "README.md", "PRIVACY.md", ".difyignore",
                     "_assets/icon.svg", "provider/local_reranker.yaml", "provider/local_reranker.py",
                     "models/rerank/rerank.py", "models/rerank/bge-reranker-v2-m3.yaml",
                     "models/rerank/bge-reranker-large.yaml", "models/rerank/bge-reranker-base.yaml"}


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> difypkg.Package:
    return difypkg.build(tmp_path_factory.mktemp("dist"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A scratch copy of the parts of the repository the package is built from."""
    copy = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO_ROOT / "dify_plugin", copy / "dify_plugin", ignore=ignore)
    shutil.copytree(REPO_ROOT / "rerank_kit", copy / "rerank_kit", ignore=ignore)
    shutil.copy(REPO_ROOT / "manifest.yaml", copy / "manifest.yaml")
    return copy


def edit_yaml(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def problems_of(root: Path) -> str:
    with pytest.raises(PackageError) as caught:
        difypkg.validate(difypkg.plugin_root_files(root))
    return str(caught.value)


def test_cli_builds_the_package_and_prints_its_identity(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["package-dify", "-o", str(tmp_path / "dist")]) == 0
    path, identity = capsys.readouterr().out.split()
    manifest = yaml.safe_load((REPO_ROOT / "manifest.yaml").read_text(encoding="utf-8"))
    assert Path(path) == tmp_path / "dist" / f"{manifest['name']}-{manifest['version']}.difypkg"
    assert re.fullmatch(rf"{manifest['author']}/{manifest['name']}:{re.escape(str(manifest['version']))}"
                        r"@[0-9a-f]{64}", identity)


def test_zip_layout_follows_the_go_packager(package: difypkg.Package) -> None:
    with zipfile.ZipFile(package.path) as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names)
    assert not [info for info in infos if info.is_dir()]
    assert {info.compress_type for info in infos} == {zipfile.ZIP_DEFLATED}
    assert not [name for name in names if "\\" in name or "__pycache__" in name or name.endswith(".pyc")]
    assert set(names) >= PLUGIN_ROOT_FILES


def test_bundled_client_modules_are_exactly_the_import_closure(package: difypkg.Package) -> None:
    bundled = {name for name in package.files if name.startswith("rerank_kit/")}
    assert {"rerank_kit/__init__.py", "rerank_kit/client/__init__.py", "rerank_kit/errors.py",
            "rerank_kit/protocol.py"} <= bundled
    assert "rerank_kit/cli.py" not in bundled and not [n for n in bundled if n.startswith("rerank_kit/commands/")]
    assert not [name for name in package.files if name.split("/")[0] in ("local_server", "dify_plugin", "tests")]
    for name in bundled:
        assert (REPO_ROOT / name).read_bytes() == _read(package.path, name)


def test_identity_uses_the_daemons_checksum(package: difypkg.Package) -> None:
    with zipfile.ZipFile(package.path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    concatenated = b"".join(hashlib.sha256(p.encode()).digest() + hashlib.sha256(files[p]).digest()
                            for p in sorted(files))
    assert package.identity.endswith("@" + hashlib.sha256(concatenated).hexdigest())


def test_builds_are_reproducible(package: difypkg.Package, tmp_path: Path) -> None:
    again = difypkg.build(tmp_path)
    assert again.path.read_bytes() == package.path.read_bytes()
    assert again.identity == package.identity


def test_difyignore_is_honoured(root: Path) -> None:
    plugin = root / "dify_plugin"
    for junk in ("__pycache__/rerank.cpython-312.pyc", "models/rerank/__pycache__/x.pyc", "tests/test_x.py",
                 "old.difypkg", ".DS_Store"):
        (plugin / junk).parent.mkdir(parents=True, exist_ok=True)
        (plugin / junk).write_bytes(b"junk")
    (plugin / "NOTICE.txt").write_text("kept", encoding="utf-8")
    files = difypkg.plugin_root_files(root)
    assert "NOTICE.txt" in files
    assert not [name for name in files if "__pycache__" in name or name.startswith("tests/")
                or name.endswith((".difypkg", ".DS_Store"))]


def test_client_modules_follow_relative_and_nested_imports(root: Path) -> None:
    (root / "rerank_kit" / "_probe_a.py").write_text("from . import _probe_b\n", encoding="utf-8")
    (root / "rerank_kit" / "_probe_b.py").write_text("from .errors import RerankError\n", encoding="utf-8")
    model = root / "dify_plugin" / "models" / "rerank" / "rerank.py"
    model.write_text(model.read_text(encoding="utf-8") + "\nimport rerank_kit._probe_a  # noqa\n", encoding="utf-8")
    files = difypkg.plugin_root_files(root)
    assert {"rerank_kit/_probe_a.py", "rerank_kit/_probe_b.py", "rerank_kit/errors.py"} <= set(files)
    difypkg.validate(files)


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m.update(version="1.0"), "version must look like"),
    (lambda m: m.update(author="Rerank Kit"), "author must match"),
    (lambda m: m.update(name="local reranker"), "name must match"),
    (lambda m: m.update(type="tool"), "type must be 'plugin'"),
    (lambda m: m.update(icon="missing.svg"), "'missing.svg' is not in _assets/"),
    (lambda m: m["resource"].update(memory=0), "resource.memory"),
    (lambda m: m["meta"].update(arch=["x86"]), "meta.arch"),
    (lambda m: m["meta"]["runner"].update(entrypoint="server"), "entrypoint 'server' has no .py file"),
    (lambda m: m.update(created_at="yesterday"), "created_at must be an RFC3339"),
    (lambda m: m["plugins"].update(tools=["provider/tool.yaml"]), "cannot also declare plugins.tools"),
    (lambda m: m["label"].pop("en_US"), "label needs an en_US text"),
])
def test_manifest_rules(root: Path, change, message: str) -> None:
    edit_yaml(root / "manifest.yaml", change)
    assert message in problems_of(root)


def _provider(change):
    return lambda root: edit_yaml(root / "dify_plugin" / "provider" / "local_reranker.yaml", change)


@pytest.mark.parametrize(("tamper", "message"), [
    (_provider(lambda p: p.update(models=["models/rerank/a.yaml"])), "models must be a mapping"),
    (_provider(lambda p: p.update(icon_small={"en_US": "nope.png"})), "icon_small 'nope.png' is not in _assets/"),
    (_provider(lambda p: p.update(supported_model_types=["reranker"])), "supported_model_types must be"),
    (_provider(lambda p: p.update(configurate_methods=["fetch-from-remote"])), "configurate_methods must be"),
    (_provider(lambda p: p.pop("model_credential_schema")), "customizable-model needs a model_credential_schema"),
    (_provider(lambda p: p["provider_credential_schema"]["credential_form_schemas"][2].update(default=60)),
     "(timeout) default must be a string"),
    (_provider(lambda p: p["provider_credential_schema"]["credential_form_schemas"][0].update(type="url")),
     "(server_url) type must be one of"),
    (_provider(lambda p: p["models"]["rerank"].update(predefined=["models/rerank/*.yml"])), "matches no file"),
    (_provider(lambda p: p["extra"]["python"].update(provider_source="provider/missing.py")),
     "'provider/missing.py' is not in the package"),
    (_provider(lambda p: p["extra"]["python"].update(model_sources=["dify_plugin/models/rerank/rerank.py"])),
     "would load as dify_plugin.* and shadow the SDK"),
    (lambda root: edit_yaml(root / "dify_plugin" / "models" / "rerank" / "bge-reranker-base.yaml",
                            lambda m: m.update(model_type="llm")), "model_type 'llm' is not in supported"),
    (lambda root: edit_yaml(root / "dify_plugin" / "models" / "rerank" / "bge-reranker-base.yaml",
                            lambda m: m["model_properties"].update(context_size="512")), "context_size must be"),
    (lambda root: (root / "dify_plugin" / "README.md").unlink(), "README.md is missing"),
    (lambda root: (root / "dify_plugin" / "requirements.txt").write_text("httpx\n"),
     "imports dify_plugin, which requirements.txt does not install"),
    (lambda root: (root / "dify_plugin" / "provider" / "gpu.py").write_text("import torch\n"),
     "provider/gpu.py imports torch: server-side code must stay out of the plugin"),
    (lambda root: (root / "rerank_kit" / "client" / "transport.py").write_text(
        (root / "rerank_kit" / "client" / "transport.py").read_text() + "\nimport dify_plugin\n"),
     "rerank_kit/client/transport.py imports the dify_plugin SDK"),
])
def test_provider_model_and_source_rules(root: Path, tamper, message: str) -> None:
    tamper(root)
    assert message in problems_of(root)


def test_every_problem_is_reported_at_once(root: Path) -> None:
    edit_yaml(root / "manifest.yaml", lambda m: m.update(version="one", author="A"))
    text = problems_of(root)
    assert "version must look like" in text and "author must match" in text


def _zip(entries: dict[str, bytes], *, directory: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        if directory:
            archive.writestr(zipfile.ZipInfo(directory), b"")
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _read(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(name)


def test_check_validates_an_existing_package(package: difypkg.Package, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["package-dify", "--check", str(package.path)]) == 0
    assert capsys.readouterr().out.split()[1] == package.identity


@pytest.mark.parametrize(("directory", "extra", "message"), [
    ("provider/", {}, "directory entry in package: 'provider/'"),
    (None, {"../evil.py": b""}, "unsafe path in package: '../evil.py'"),
])
def test_check_refuses_what_the_daemon_refuses(package: difypkg.Package, tmp_path: Path,
                                               capsys: pytest.CaptureFixture, directory, extra, message) -> None:
    with zipfile.ZipFile(package.path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    bad = tmp_path / "bad.difypkg"
    bad.write_bytes(_zip({**files, **extra}, directory=directory))
    assert cli.main(["package-dify", "--check", str(bad)]) == 1
    assert message in capsys.readouterr().err


def test_size_cap(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["package-dify", "-o", str(tmp_path), "--max-size", "1000"]) == 1
    err = capsys.readouterr().err
    files = difypkg.plugin_root_files()
    assert "exceeds 1000" in err and f"largest: {max(files, key=lambda p: len(files[p]))} " in err
    assert not list(tmp_path.glob("*.difypkg"))


def test_a_folder_without_the_plugin_sources_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["package-dify", "--root", str(tmp_path), "-o", str(tmp_path / "dist")]) == 1
    assert "is not a rerank-kit checkout" in capsys.readouterr().err


def test_root_option_builds_from_another_checkout(root: Path, capsys: pytest.CaptureFixture) -> None:
    edit_yaml(root / "manifest.yaml", lambda m: m.update(version="9.9.9"))
    assert cli.main(["package-dify", "--root", str(root), "-o", str(root / "dist")]) == 0
    assert capsys.readouterr().out.split()[0].endswith("local_reranker-9.9.9.difypkg")
