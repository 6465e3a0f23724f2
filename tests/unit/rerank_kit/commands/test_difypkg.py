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
from tests.support import REPO_ROOT

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
    shutil.copytree(REPO_ROOT / "dify_tool", copy / "dify_tool", ignore=ignore)
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


def test_cli_builds_both_packages_and_prints_their_identities(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["package-dify", "-o", str(tmp_path / "dist")]) == 0
    out = capsys.readouterr().out.split()
    assert len(out) == 4
    for (path, identity), plugin in zip([out[:2], out[2:]], difypkg.PLUGINS, strict=True):
        manifest = yaml.safe_load((REPO_ROOT / plugin.manifest).read_text(encoding="utf-8"))
        assert Path(path) == tmp_path / "dist" / f"{manifest['name']}-{manifest['version']}.difypkg"
        assert re.fullmatch(rf"{manifest['author']}/{manifest['name']}:{re.escape(str(manifest['version']))}"
                            r"@[0-9a-f]{64}", identity)


@pytest.mark.parametrize(("option", "name"), [("--model", "local_reranker"), ("--tool", "rerank_kit_tools")])
def test_model_or_tool_builds_one_package(tmp_path: Path, capsys: pytest.CaptureFixture, option: str,
                                          name: str) -> None:
    assert cli.main(["package-dify", option, "-o", str(tmp_path)]) == 0
    path, identity = capsys.readouterr().out.split()
    assert Path(path).name == f"{name}-0.1.0.difypkg" and identity.startswith(f"rerank-kit/{name}:0.1.0@")
    assert [p.name for p in tmp_path.iterdir()] == [Path(path).name]


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


# ---------------------------------------------------------------- the workflow tool package

TOOL_ROOT_FILES = {"manifest.yaml", "main.py", "requirements.txt", "README.md", "PRIVACY.md", ".difyignore",
                   "_assets/icon.svg", "provider/rerank_kit_tools.yaml", "provider/rerank_kit_tools.py",
                   "tools/rerank.yaml", "tools/rerank.py", "tools/inputs.py"}


@pytest.fixture(scope="module")
def tool_package(tmp_path_factory: pytest.TempPathFactory) -> difypkg.Package:
    return difypkg.build(tmp_path_factory.mktemp("tool-dist"), plugin=difypkg.TOOL)


def test_the_tool_package_has_its_own_root_and_shares_the_pins_and_the_client(
        tool_package: difypkg.Package, package: difypkg.Package) -> None:
    names = set(tool_package.files)
    assert names - {n for n in names if n.startswith("rerank_kit/")} == TOOL_ROOT_FILES
    assert _read(tool_package.path, "requirements.txt") == (REPO_ROOT / "dify_plugin" / "requirements.txt").read_bytes()
    assert not (REPO_ROOT / "dify_tool" / "requirements.txt").exists()  # shared by the packager rule, not copied
    bundled = {n for n in names if n.startswith("rerank_kit/")}
    assert {"rerank_kit/client/forms.py", "rerank_kit/scores.py", "rerank_kit/errors.py"} <= bundled
    model_bundled = {n for n in package.files if n.startswith("rerank_kit/")}
    assert "rerank_kit/scores.py" not in model_bundled  # each gets its own import closure
    for name in bundled & model_bundled:
        assert _read(tool_package.path, name) == _read(package.path, name) == (REPO_ROOT / name).read_bytes()
    manifest = yaml.safe_load(_read(tool_package.path, "manifest.yaml"))
    assert manifest["plugins"] == {"tools": ["provider/rerank_kit_tools.yaml"]}
    assert _read(tool_package.path, "_assets/icon.svg") != _read(package.path, "_assets/icon.svg")


def _tool_yaml(rel: str, change):
    return lambda root: edit_yaml(root / "dify_tool" / rel, change)


def _tool_param(name: str, **changes):
    def change(tool):
        next(p for p in tool["parameters"] if p["name"] == name).update(changes)
    return _tool_yaml("tools/rerank.yaml", change)


@pytest.mark.parametrize(("tamper", "message"), [
    (_tool_yaml("manifest.yaml", lambda m: m["plugins"].update(models=["provider/x.yaml"])),
     "a model plugin cannot also declare plugins.tools"),
    (_tool_yaml("manifest.yaml", lambda m: m.update(plugins={})), "plugins.models (a model provider) or plugins.tools"),
    (_tool_yaml("manifest.yaml", lambda m: m.update(tags=["rerank"])), "manifest.yaml tags must be a list of"),
    (_tool_yaml("provider/rerank_kit_tools.yaml", lambda p: p["identity"].update(name="rerank kit")),
     "identity.name must match"),
    (_tool_yaml("provider/rerank_kit_tools.yaml", lambda p: p["identity"].update(icon="nope.svg")),
     "identity.icon 'nope.svg' is not in _assets/"),
    (_tool_yaml("provider/rerank_kit_tools.yaml", lambda p: p["identity"].pop("description")),
     "identity.description needs an en_US text"),
    (_tool_yaml("provider/rerank_kit_tools.yaml",
                lambda p: p["credentials_for_provider"]["server_url"].update(type="url")),
     "credentials_for_provider[server_url] type must be one of"),
    (_tool_yaml("provider/rerank_kit_tools.yaml", lambda p: p.update(tools=["tools/missing.yaml"])),
     "tools/missing.yaml is missing"),
    (_tool_yaml("provider/rerank_kit_tools.yaml", lambda p: p.update(tools=[])), "tools must list the tool YAML"),
    (_tool_yaml("provider/rerank_kit_tools.yaml", lambda p: p["extra"]["python"].update(source="provider/x.py")),
     "source 'provider/x.py' is not in the package"),
    (_tool_yaml("tools/rerank.yaml", lambda t: t["description"].pop("llm")), "description: llm is required"),
    (_tool_yaml("tools/rerank.yaml", lambda t: t["identity"]["label"].pop("en_US")), "identity.label needs an en_US"),
    (_tool_param("documents", type="list"), "parameters[documents] type must be one of"),
    (_tool_param("top_n", form="node"), "parameters[top_n] form must be one of"),
    (_tool_param("model", multiple=True), "multiple is only valid for select"),
    (_tool_param("query", human_description={}), "parameters[query] human_description needs an en_US"),
    (_tool_yaml("tools/rerank.yaml", lambda t: t["extra"]["python"].update(source="dify_plugin/tools/rerank.py")),
     "would load as dify_plugin.* and shadow the SDK"),
    (lambda root: (root / "dify_tool" / "tools" / "gpu.py").write_text("import FlagEmbedding\n"),
     "tools/gpu.py imports FlagEmbedding: server-side code must stay out of the plugin"),
])
def test_tool_provider_and_tool_rules(root: Path, tamper, message: str) -> None:
    tamper(root)
    with pytest.raises(PackageError) as caught:
        difypkg.validate(difypkg.plugin_root_files(root, difypkg.TOOL))
    assert message in str(caught.value)


def test_the_tool_package_is_reproducible_and_checkable(tool_package: difypkg.Package, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    assert difypkg.build(tmp_path, plugin=difypkg.TOOL).path.read_bytes() == tool_package.path.read_bytes()
    assert cli.main(["package-dify", "--check", str(tool_package.path)]) == 0
    assert capsys.readouterr().out.split()[1] == tool_package.identity
