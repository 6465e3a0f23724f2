"""How much memory this process can still take, before a one-time job that needs a lot of it (the ONNX export).

The least of the machine's MemAvailable and what the memory limit of every cgroup the process runs in leaves
(a container's, a Kubernetes pod's, a systemd service's MemoryMax): going over a limit gets processes killed.
A cgroup's usage counts the inactive page cache, which the kernel reclaims before killing, so that part counts
as free. Linux only: elsewhere nothing is known (None).
"""

from __future__ import annotations

from pathlib import Path

_NO_LIMIT = 2**60  # cgroup v1 writes a huge number where v2 writes "max"


def available_bytes(proc: Path = Path("/proc"), cgroup: Path = Path("/sys/fs/cgroup")) -> int | None:
    candidates = []
    meminfo = _read(proc / "meminfo")
    if meminfo and "MemAvailable:" in meminfo:
        candidates.append(int(meminfo.split("MemAvailable:", 1)[1].split()[0]) * 1024)
    for folder, v2 in _memory_cgroups(proc, cgroup):
        left = _left_under_limit(folder, v2)
        if left is not None:
            candidates.append(left)
    return min(candidates) if candidates else None


def _memory_cgroups(proc: Path, cgroup: Path) -> list[tuple[Path, bool]]:
    """The folders of the memory cgroup this process is in and of its ancestors (each may set a limit), with
    whether each is cgroup v2; the mount's root when /proc/self/cgroup does not say."""
    folders: list[tuple[Path, bool]] = []
    for line in (_read(proc / "self" / "cgroup") or "").splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            base, v2 = cgroup, True
        elif "memory" in controllers.split(","):
            base, v2 = cgroup / "memory", False
        else:
            continue
        parts = [part for part in path.split("/") if part]
        folders += [(base.joinpath(*parts[:depth]), v2) for depth in range(len(parts), -1, -1)]
    return folders or [(cgroup, True), (cgroup / "memory", False)]


def _left_under_limit(folder: Path, v2: bool) -> int | None:
    limit_text = _read(folder / ("memory.max" if v2 else "memory.limit_in_bytes"))
    usage_text = _read(folder / ("memory.current" if v2 else "memory.usage_in_bytes"))
    if not limit_text or not usage_text or not limit_text.strip().isdigit() or int(limit_text) >= _NO_LIMIT:
        return None
    reclaimable = 0
    for line in (_read(folder / "memory.stat") or "").splitlines():
        key, _, value = line.partition(" ")
        if key == ("inactive_file" if v2 else "total_inactive_file") and value.strip().isdigit():
            reclaimable = int(value)
    return max(0, int(limit_text) - (int(usage_text) - reclaimable))


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None
