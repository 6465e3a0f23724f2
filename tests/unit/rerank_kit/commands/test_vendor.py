"""The one vendoring rule: both integrations get exactly the `rerank_kit` modules they import, and that
core needs only httpx and pydantic (what Dify's plugin venv and RAGFlow's image both have)."""

from __future__ import annotations

import sys

from ragflow_integration import deployment
from rerank_kit.commands import difypkg, vendor


def third_party_imports(files: dict[str, bytes]) -> set[str]:
    found = set()
    for rel, data in files.items():
        module, is_package = vendor.module_name(rel)
        found |= {name.split(".")[0] for name, _ in vendor.imported_modules(data, module, is_package)}
    return {top for top in found if top and top not in sys.stdlib_module_names and top != vendor.CORE_PACKAGE}


def core_of(files: dict) -> dict[str, bytes]:
    return {rel: data if isinstance(data, bytes) else data.encode() for rel, data in files.items()
            if rel.startswith(f"{vendor.CORE_PACKAGE}/")}


def test_both_integrations_vendor_by_the_same_rule() -> None:
    dify = core_of(difypkg.plugin_root_files())
    ragflow = core_of(deployment.runtime_files())
    assert {"rerank_kit/__init__.py", "rerank_kit/client/__init__.py", "rerank_kit/errors.py",
            "rerank_kit/protocol.py"} <= dify.keys()
    # The RAGFlow class calibrates with rerank_kit.scores: a hand-written list of files would have missed it.
    assert {"rerank_kit/client/__init__.py", "rerank_kit/scores.py"} <= ragflow.keys()
    for files in (dify, ragflow):
        for rel, data in files.items():
            assert data == (vendor.REPO_ROOT / rel).read_bytes(), rel


def test_the_vendored_core_needs_only_httpx_and_pydantic() -> None:
    for files in (core_of(difypkg.plugin_root_files()), core_of(deployment.runtime_files())):
        assert third_party_imports(files) <= {"httpx", "pydantic"}
        assert not [rel for rel in files if rel.startswith(("rerank_kit/commands/", "rerank_kit/cli.py"))]
