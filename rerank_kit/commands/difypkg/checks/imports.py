"""What the plugin's Python runner needs: every import bundled or installed by requirements.txt, nothing heavy."""

from __future__ import annotations

import functools
import importlib.metadata
import re
import sys
from collections.abc import Mapping

from rerank_kit.commands import wheels
from rerank_kit.commands.difypkg.checks.findings import Findings
from rerank_kit.commands.vendor import CORE_PACKAGE as CLIENT_PACKAGE
from rerank_kit.commands.vendor import imported_modules, module_file_in, module_name

# Heavy or server-side code must never reach the plugin's venv.
FORBIDDEN_IMPORTS = {"torch", "FlagEmbedding", "transformers", "local_server", "ragflow_integration",
                     "benchmarks"}


@functools.cache
def _distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


@functools.cache
def _installed_closure(names: frozenset[str]) -> set[str]:
    """Requirement names plus whatever they pull in, as far as this environment knows."""
    closure, pending = set(names), list(names)
    while pending:
        try:
            requires = importlib.metadata.requires(pending.pop()) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for requirement in requires:
            if "extra ==" in requirement:
                continue
            dep = wheels.normalise(re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0])
            if dep not in closure:
                closure.add(dep)
                pending.append(dep)
    return closure


def check_imports(found: Findings) -> None:
    files = found.files
    requirements = set(wheels.requirement_pins(files.get("requirements.txt", b"").decode()))
    if not requirements:
        found.add("requirements.txt is missing or empty (the daemon installs the plugin's venv from it)")
    provided = _installed_closure(frozenset(requirements))
    distributions = _distributions()
    local = {rel.split("/")[0].removesuffix(".py") for rel in files if rel.endswith(".py")}
    for rel in (r for r in files if r.endswith(".py")):
        module, is_package = module_name(rel)
        for name, must_be_module in set(imported_modules(files[rel], module, is_package)):
            top = name.split(".")[0]
            if top in FORBIDDEN_IMPORTS:
                found.add(f"{rel} imports {name}: server-side code must stay out of the plugin")
            elif top == "dify_plugin" and rel.startswith(f"{CLIENT_PACKAGE}/"):
                found.add(f"{rel} imports the dify_plugin SDK: the shared client must stay SDK-free")
            elif top == CLIENT_PACKAGE and must_be_module and not module_file_in(name, files):
                found.add(f"{rel} imports {name}, which is not bundled")
            elif top in local or top in sys.stdlib_module_names or not top:
                continue
            elif wheels.normalise(top) not in provided and not {
                    wheels.normalise(d) for d in distributions.get(top, [])} & provided:
                found.add(f"{rel} imports {top}, which requirements.txt does not install")
