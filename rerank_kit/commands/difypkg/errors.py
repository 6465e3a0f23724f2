"""The packager's one error: the plugin root or package is invalid, with every problem found."""

from __future__ import annotations

from collections.abc import Iterable


class PackageError(Exception):
    """The plugin root or package is invalid; the message lists every problem found."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid Dify plugin package:\n" + "\n".join(f"  - {p}" for p in self.problems))
