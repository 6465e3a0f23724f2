"""The import rules of docs/ARCHITECTURE.md, read from the sources: what each part may import; and where each
kind of test lives (its "Tests" section)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rerank_kit.commands import vendor

ROOT = vendor.REPO_ROOT
TESTS = ROOT / "tests"
CORE = {"rerank_kit/__init__.py", "rerank_kit/errors.py", "rerank_kit/names.py", "rerank_kit/protocol.py",
        "rerank_kit/scores.py", "rerank_kit/hybrid.py"}
OURS = {"rerank_kit", "local_server", "ragflow_integration", "benchmarks", "dify_plugin", "dify_tool"}


def imports_of(rel: str) -> set[str]:
    """Top-level names (and `rerank_kit.x` for our core) imported anywhere in the file."""
    module, is_package = vendor.module_name(rel)
    names = {name for name, _ in vendor.imported_modules((ROOT / rel).read_bytes(), module, is_package)}
    tops = {name.split(".")[0] for name in names} - set(sys.stdlib_module_names) - {"__future__", ""}
    ours = {".".join(name.split(".")[:2]) for name in names if name.startswith("rerank_kit.")}
    modules = {name for name in ours if (ROOT / name.replace(".", "/")).is_dir()
               or (ROOT / f"{name.replace('.', '/')}.py").is_file()}  # not `from rerank_kit import DEFAULT_PORT`
    return tops | modules


def sources(*folders: str) -> list[str]:
    return sorted(p.relative_to(ROOT).as_posix() for folder in folders for p in (ROOT / folder).rglob("*.py"))


def core_files() -> list[str]:
    return sorted(CORE | {rel for rel in sources("rerank_kit/client") if rel.startswith("rerank_kit/client/")}
                  | ({"rerank_kit/client.py"} if (ROOT / "rerank_kit/client.py").is_file() else set()))


@pytest.mark.parametrize("rel", core_files())
def test_the_core_imports_only_httpx_pydantic_and_itself(rel: str) -> None:
    found = imports_of(rel)
    assert found - {"rerank_kit", "httpx", "pydantic"} <= {f"rerank_kit.{m}" for m in (
        "client", "errors", "names", "protocol", "scores", "hybrid")}, found
    assert "rerank_kit.commands" not in found and "rerank_kit.cli" not in found


@pytest.mark.parametrize("rel", sources("rerank_kit/commands"))
def test_the_tools_never_import_the_server_or_the_integrations(rel: str) -> None:
    assert not imports_of(rel) & {"local_server", "ragflow_integration", "benchmarks", "torch", "dify_plugin"}


@pytest.mark.parametrize("rel", sources("rerank_kit/commands"))
def test_the_tools_import_only_what_the_rule_table_allows(rel: str) -> None:
    """docs/ARCHITECTURE.md: the core (httpx, pydantic), pyyaml, huggingface_hub (download), cryptography."""
    allowed = {"rerank_kit", "httpx", "pydantic", "yaml", "huggingface_hub", "cryptography"} | {
        f"rerank_kit.{m}" for m in ("client", "errors", "names", "protocol", "scores", "hybrid", "commands")}
    assert imports_of(rel) <= allowed, imports_of(rel) - allowed


@pytest.mark.parametrize("rel", sources("local_server"))
def test_the_server_never_imports_the_tools_or_the_integrations(rel: str) -> None:
    found = imports_of(rel)
    assert not found & {"ragflow_integration", "benchmarks", "dify_plugin", "rerank_kit.commands", "rerank_kit.cli"}


@pytest.mark.parametrize("rel", sources("dify_plugin"))
def test_the_plugin_imports_the_sdk_and_the_core_only(rel: str) -> None:
    found = imports_of(rel)
    assert found <= {"dify_plugin", "rerank_kit", "httpx", "pydantic"} | {
        f"rerank_kit.{m}" for m in ("client", "errors", "names", "protocol", "scores", "hybrid")}, found


@pytest.mark.parametrize("rel", sources("dify_tool"))
def test_the_tool_plugin_imports_the_sdk_the_core_and_its_own_tools_only(rel: str) -> None:
    found = imports_of(rel)
    assert found <= {"dify_plugin", "rerank_kit", "tools"} | {
        f"rerank_kit.{m}" for m in ("client", "errors", "names", "protocol", "scores")}, found


def test_the_ragflow_class_imports_the_core_and_numpy_only() -> None:
    found = imports_of("ragflow_integration/rerank_model.py")
    assert found <= {"numpy", "rerank_kit"} | {
        f"rerank_kit.{m}" for m in ("client", "errors", "names", "protocol", "scores")}


def test_only_the_cli_reaches_the_server_and_the_integrations() -> None:
    """cli.py names them as strings, imported when chosen; no other rerank_kit module imports them."""
    reaching = [rel for rel in sources("rerank_kit")
                if imports_of(rel) & {"local_server", "ragflow_integration", "benchmarks"}]
    assert reaching == []


def test_the_wheel_holds_the_product_not_the_benchmarks(tmp_path: Path) -> None:
    import subprocess
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("rerank_kit-*.whl"))
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {"rerank_kit", "local_server", "ragflow_integration"} <= tops
    assert "benchmarks" not in tops and "tests" not in tops


def test_every_test_module_lives_in_its_kinds_folder() -> None:
    """None at the top of tests/ or in tests/support/: unit/, e2e/, repo/, and the two run in other environments."""
    homes = {path.relative_to(TESTS).parts[0] for path in TESTS.rglob("test_*.py")}
    assert homes <= {"unit", "e2e", "repo", "dify_sdk", "deployment"}, homes


def test_the_unit_tests_mirror_the_packages() -> None:
    """tests/unit/<package>/test_<module>.py names a module, or a package beside its folder, that exists."""
    strays = []
    for path in sorted((TESTS / "unit").rglob("test_*.py")):
        rel = path.relative_to(TESTS / "unit")
        named = ROOT / rel.parent / rel.stem.removeprefix("test_")
        if not (named.with_suffix(".py").is_file() or (named / "__init__.py").is_file()):
            strays.append(rel.as_posix())
    assert strays == []
