"""A process and its descendants, read from Linux's /proc: for Chromium's memory (the browser
process, its zygotes, GPU and renderers) and for checking that none outlives the monitor."""

from __future__ import annotations

from pathlib import Path

PROC = Path("/proc")
PAGE_BYTES = 4096


def _parents() -> dict[int, int]:
    parents = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`, now."""
    return [child for child, parent in _parents().items() if parent == pid]


def threads(pid: int) -> list[int]:
    """The thread ids of `pid` (its main thread's is `pid`); none once it is gone."""
    try:
        return [int(task.name) for task in (PROC / str(pid) / "task").iterdir()]
    except OSError:
        return []


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, alive now."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it is not)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of these processes together (shared pages counted in each)."""
    total = 0
    for pid in pids:
        try:
            resident = (PROC / str(pid) / "statm").read_text().split()[1]
        except (OSError, IndexError):
            continue
        total += int(resident) * PAGE_BYTES
    return total


def pss_bytes(pids: list[int]) -> int:
    """Proportional memory of these processes together: each shared page counted once
    across them (what they cost the machine, unlike the sum of their RSS)."""
    total = 0
    for pid in pids:
        try:
            rollup = (PROC / str(pid) / "smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
                break
    return total


def started(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (with the pid, a process's identity:
    pids are reused); None when there is no such process."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[19])
