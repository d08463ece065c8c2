"""What the harness reads of processes through ``/proc``: CPU time, resident memory, affinity."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

__all__ = ["cpu_seconds", "pinned_postgres", "rss_bytes", "tree"]

_TICKS = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (gunicorn's master and its workers, say)."""
    found = [pid]
    for task in (_PROC / str(pid) / "task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found.extend(tree(int(child)))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of ``pids`` (all their threads), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
        total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def rss_bytes(pids: list[int]) -> int:
    """The largest resident set among ``pids``: the worker's, under a pre-fork master."""
    largest = 0
    for pid in pids:
        try:
            status = (_PROC / str(pid) / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                largest = max(largest, int(line.split()[1]) * 1024)
    return largest


def _postgres_pids() -> list[int]:
    pids = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@contextmanager
def pinned_postgres(cpus: set[int]) -> Iterator[int]:
    """Pin the running PostgreSQL's processes (new backends inherit it) to ``cpus``, then restore.

    Yields how many processes were pinned (0 where they belong to another user and cannot be).
    """
    before: dict[int, set[int]] = {}
    for pid in _postgres_pids():
        try:
            before[pid] = os.sched_getaffinity(pid)
            os.sched_setaffinity(pid, cpus)
        except OSError:
            before.pop(pid, None)
    try:
        yield len(before)
    finally:
        for pid, affinity in before.items():
            with suppress(OSError):
                os.sched_setaffinity(pid, affinity)
