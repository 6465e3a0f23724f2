"""`.difyignore`: the subset of gitignore that Dify's Go packager honours when it zips a plugin root."""

from __future__ import annotations

import re
from dataclasses import dataclass


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


@dataclass(frozen=True)
class IgnorePattern:
    regex: re.Pattern[str]
    anchored: bool  # contains a slash: matched against the whole relative path
    dir_only: bool

    @classmethod
    def parse(cls, line: str) -> IgnorePattern:
        dir_only = line.endswith("/")
        body = line.rstrip("/")
        anchored = "/" in body
        return cls(_glob_regex(body.lstrip("/")), anchored, dir_only)

    def matches(self, rel_path: str, is_dir: bool) -> bool:
        if self.dir_only and not is_dir:
            return False
        return bool(self.regex.match(rel_path if self.anchored else rel_path.rsplit("/", 1)[-1]))


def ignore_patterns(text: str) -> list[IgnorePattern]:
    """Patterns of a .difyignore; like the Go packager, `!` lines never re-include anything."""
    lines = (line.strip() for line in text.splitlines())
    return [IgnorePattern.parse(line) for line in lines if line and not line.startswith(("#", "!"))]


def is_ignored(rel_path: str, patterns: list[IgnorePattern]) -> bool:
    """True when the file or any folder above it matches a pattern."""
    parts = rel_path.split("/")
    candidates = [("/".join(parts[:n]), n < len(parts)) for n in range(1, len(parts) + 1)]
    return any(p.matches(path, is_dir) for path, is_dir in candidates for p in patterns)
