"""What the process can still take: the least of MemAvailable and what each memory cgroup's limit leaves (the
cgroup the process is in and its ancestors, v1 or v2), counting the inactive page cache as free."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_server.memory import available_bytes

MEMINFO = "MemTotal: 16000000 kB\nMemAvailable: 8388608 kB\n"


@pytest.mark.parametrize(("files", "expected"), [
    ({"meminfo": MEMINFO}, 8 * 2**30),
    ({"meminfo": MEMINFO, "memory.max": "4294967296\n", "memory.current": "1073741824\n"},
     3 * 2**30),  # a cgroup v2 limit (a container, a Kubernetes pod) below what the machine has free
    ({"meminfo": MEMINFO, "memory.max": "4294967296\n", "memory.current": "2147483648\n",
      "memory.stat": "anon 1073741824\ninactive_file 1073741824\n"}, 3 * 2**30),  # page cache is reclaimable
    ({"meminfo": MEMINFO, "memory.max": "max\n", "memory.current": "1073741824\n"}, 8 * 2**30),
    ({"meminfo": MEMINFO, "memory/memory.limit_in_bytes": "2147483648\n",
      "memory/memory.usage_in_bytes": "1073741824\n"}, 2**30),  # cgroup v1
    ({"meminfo": MEMINFO, "memory/memory.limit_in_bytes": "9223372036854771712\n",
      "memory/memory.usage_in_bytes": "1073741824\n"}, 8 * 2**30),  # v1 without a limit
    ({"meminfo": MEMINFO, "self/cgroup": "0::/system.slice/rerank-kit.service\n",
      "system.slice/rerank-kit.service/memory.max": "3221225472\n",
      "system.slice/rerank-kit.service/memory.current": "1073741824\n",
      "system.slice/memory.max": "2147483648\n", "system.slice/memory.current": "1073741824\n"},
     2**30),  # a systemd service's MemoryMax, and its slice's lower one: the least of the ancestors counts
    ({}, None),  # nothing to read (not Linux): no check
])
def test_available_memory_is_the_least_of_the_machine_and_its_cgroups(files: dict[str, str], expected: int | None,
                                                                       tmp_path: Path) -> None:
    proc, cgroup = tmp_path / "proc", tmp_path / "cgroup"
    for name, text in files.items():
        path = proc / name if name in ("meminfo", "self/cgroup") else cgroup / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert available_bytes(proc, cgroup) == expected
