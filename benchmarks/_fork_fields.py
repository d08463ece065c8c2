"""What ``benchmarks._fork_child`` reports for each child, shared with ``benchmarks.fork``.

A module of its own: ``_fork_child`` registers at-fork timing marks as it is imported, so the
family that reads its figures must not import it.
"""

from __future__ import annotations

__all__ = ["COUNTS", "FIELDS"]

#: Nanoseconds, but ``*_faults``, which are counts of the child's minor page faults (mostly
#: copy-on-write copies of its parent's pages).
FIELDS = (
    "fork_to_child",
    "parent_before",
    "handlers",
    "child_hooks",
    "child_hooks_again",
    "parent_fork_call",
    "fork_to_exported",
    "child_wall",
    "child_cpu_at_fork",
    "child_cpu",
    "child_faults_at_fork",
    "child_faults",
)
#: The fields that count page faults; the others are nanoseconds.
COUNTS = ("child_faults_at_fork", "child_faults")
