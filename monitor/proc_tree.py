"""A process and its descendants, read from Linux's /proc: for Chromium's memory (the browser
process, its zygotes, GPU and renderers) and for checking that none outlives the monitor."""

from __future__ import annotations

from pathlib import Path

PROC = Path("/proc")
PAGE_BYTES = 4096


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after "pid (comm)", from the state on (comm may hold
    spaces and parentheses); None when there is no such process."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def _parents() -> dict[int, int]:
    parents = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (fields := _stat(entry.name)) is not None:
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
    below: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        below.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(below.get(current, ()))
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it is not)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


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
    fields = _stat(pid)
    return None if fields is None else int(fields[19])
