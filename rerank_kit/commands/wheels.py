"""The plugin's requirements.txt, and the wheels an offline .difypkg carries (`package-dify --offline`).

Dify's plugin daemon installs a plugin with `uv pip install -r requirements.txt` in the unpacked package,
which needs a package index. An offline package carries binary wheels of the pinned requirements for
each target platform in `wheels/`, and its requirements.txt starts with `--no-index` and
`--find-links=./wheels/`: uv and pip both read those options from the file, and `--no-index` also
overrides the `-i` the daemon adds for its PIP_MIRROR_URL. The wheels come from `pip download` through a
local cache, so a repeated build needs no network; a wheel several platforms share (py3-none-any) is
stored once.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WHEELS_DIR = "wheels/"
OFFLINE_OPTIONS = ("--no-index", f"--find-links=./{WHEELS_DIR}")
# Wheels for glibc 2.28 and newer: the daemon's image (Ubuntu 24.04) has 2.39, older hosts keep working.
DEFAULT_GLIBC_MINOR = 28
MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}  # manifest meta.arch -> wheel platform machine
PLATFORM_RE = re.compile(r"manylinux_2_(\d+)_(x86_64|aarch64)")
# The pre-PEP 600 names of manylinux_2_17/12/5 (only manylinux2014 exists for aarch64).
LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
PIN_RE = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*([^\s;,]+)\s*(?:;.*)?")
MIB = 1024 * 1024


class WheelError(Exception):
    """The wheels of an offline package could not be fetched, or do not cover the requirements."""


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares it (wheel file names use `_` for the separators)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def requirement_pins(text: str) -> dict[str, str | None]:
    """Requirement name -> its `==` version (None when not pinned); option lines (`--...`) are not names."""
    pins: dict[str, str | None] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            pinned = PIN_RE.fullmatch(line)
            name = pinned.group(1) if pinned else re.split(r"[\s<>=!~;\[@]", line, maxsplit=1)[0]
            pins[normalise(name)] = pinned.group(2) if pinned else None
    return pins


@dataclass(frozen=True)
class Platform:
    """A Linux wheel target, named like a wheel tag: manylinux_2_<glibc minor>_<machine>."""

    glibc_minor: int
    machine: str

    @classmethod
    def parse(cls, tag: str) -> Platform:
        match = PLATFORM_RE.fullmatch(tag)
        if not match:
            raise ValueError(f"{tag!r} is not a platform like manylinux_2_28_x86_64 or manylinux_2_28_aarch64")
        return cls(int(match.group(1)), match.group(2))

    @property
    def tag(self) -> str:
        return f"manylinux_2_{self.glibc_minor}_{self.machine}"

    @property
    def dify_arch(self) -> str:
        return next(arch for arch, machine in MACHINES.items() if machine == self.machine)

    def pip_platforms(self) -> list[str]:
        """Every platform tag a wheel that runs here may carry: pip does not expand manylinux_2_N itself."""
        tags = [f"manylinux_2_{minor}_{self.machine}" for minor in range(self.glibc_minor, 4, -1)]
        return tags + [f"{name}_{self.machine}" for minor, name in LEGACY_MANYLINUX.items()
                       if minor <= self.glibc_minor and (self.machine == "x86_64" or minor == 17)]


def manifest_platforms(manifest: Mapping[str, Any]) -> tuple[Platform, ...]:
    """The default targets: one per architecture the manifest declares (meta.arch)."""
    return tuple(Platform(DEFAULT_GLIBC_MINOR, MACHINES[arch]) for arch in manifest["meta"]["arch"])


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rerank-kit" / "wheels"


@dataclass(frozen=True)
class Offline:
    """What `--offline` builds: wheels for `platforms` (empty: the manifest's meta.arch), kept in `cache`."""

    platforms: tuple[Platform, ...] = ()
    cache: Path = field(default_factory=default_cache)
    progress: Callable[[str], None] = lambda line: None


def _pip_download(args: Iterable[str], *, isolated: bool) -> subprocess.CompletedProcess[str]:
    """`pip download`; isolated: no config file, no PIP_* variable (no index, no extra find-links)."""
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull} if isolated else None
    command = [sys.executable, "-m", "pip", *(["--isolated"] if isolated else []), "download",
               "--disable-pip-version-check", "--progress-bar=off", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def _last_lines(output: str, count: int = 6) -> str:
    lines = [line for line in output.splitlines() if line.strip() and "is ignored" not in line]
    return "\n".join(lines[-count:])


def platform_wheels(requirements: Path, platform: Platform, python_version: str, cache: Path,
                    progress: Callable[[str], None]) -> dict[str, bytes]:
    """File name -> bytes of the wheels that install `requirements` on `platform`.

    They are resolved (with their dependencies) from the cache alone, so what is returned is exactly what
    an index-less install finds; only when the cache lacks some are the pinned wheels downloaded into it.
    """
    target = ["--only-binary=:all:", f"--python-version={python_version}", "--implementation=cp",
              f"--abi=cp{python_version.replace('.', '')}", *(f"--platform={tag}" for tag in platform.pip_platforms())]
    with tempfile.TemporaryDirectory() as chosen:
        resolve = ["--no-index", f"--find-links={cache}", f"--dest={chosen}", *target, "-r", str(requirements)]
        source = f"from the cache {cache}"
        if _pip_download(resolve, isolated=True).returncode:
            progress(f"{platform.tag}: downloading wheels into {cache}")
            cache.mkdir(parents=True, exist_ok=True)
            download = _pip_download(["--no-deps", f"--dest={cache}", *target, "-r", str(requirements)], isolated=False)
            if download.returncode:
                raise WheelError(f"pip could not download the wheels for {platform.tag}:\n"
                                 f"{_last_lines(download.stderr + download.stdout)}")
            resolved = _pip_download(resolve, isolated=True)
            if resolved.returncode:
                raise WheelError(f"the wheels do not cover requirements.txt on {platform.tag} (is every dependency "
                                 f"pinned? `make lock` pins them):\n{_last_lines(resolved.stderr + resolved.stdout)}")
            source = f"downloaded into {cache}"
        wheels = {path.name: path.read_bytes() for path in sorted(Path(chosen).glob("*.whl"))}
    size = sum(map(len, wheels.values()))
    progress(f"{platform.tag}: {len(wheels)} wheels, {size / MIB:.1f} MiB ({source})")
    return wheels


def offline_files(files: Mapping[str, bytes], platforms: Iterable[Platform], python_version: str, cache: Path,
                  progress: Callable[[str], None]) -> dict[str, bytes]:
    """The plugin root with `wheels/` for every platform and a requirements.txt that installs only from it."""
    platforms = tuple(dict.fromkeys(platforms))
    requirements = files["requirements.txt"]
    wheels: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as scratch:
        requirements_file = Path(scratch) / "requirements.txt"
        requirements_file.write_bytes(requirements)
        for platform in platforms:
            wheels.update(platform_wheels(requirements_file, platform, python_version, cache, progress))
    header = (f"# Offline package: installs only from the wheels in {WHEELS_DIR} (built for "
              f"{', '.join(p.tag for p in platforms)}, CPython {python_version}).\n")
    offline_requirements = (header + "\n".join(OFFLINE_OPTIONS) + "\n").encode() + requirements
    return {**files, "requirements.txt": offline_requirements,
            **{f"{WHEELS_DIR}{name}": data for name, data in wheels.items()}}


def offline_problems(files: Mapping[str, bytes]) -> list[str]:
    """What keeps a package with `wheels/` from installing without an index (none for other packages)."""
    wheels = [path.removeprefix(WHEELS_DIR) for path in files if path.startswith(WHEELS_DIR)]
    if not wheels:
        return []
    text = files.get("requirements.txt", b"").decode()
    lines = {line.strip() for line in text.splitlines()}
    problems = [f"requirements.txt needs the line {option!r}: the package carries {WHEELS_DIR}"
                for option in OFFLINE_OPTIONS if option not in lines]
    problems += [f"{WHEELS_DIR}{name} is not a wheel" for name in wheels if "/" in name or not name.endswith(".whl")]
    available = {(normalise(name.split("-")[0]), name.split("-")[1]) for name in wheels if name.count("-") >= 4}
    for name, version in requirement_pins(text).items():
        if version is None:
            problems.append(f"requirements.txt: {name} must be pinned with == in an offline package")
        elif (name, version) not in available:
            problems.append(f"requirements.txt pins {name}=={version}, which has no wheel in {WHEELS_DIR}")
    return problems
