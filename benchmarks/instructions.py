"""Instructions per operation, counted by callgrind: a figure the machine's noise cannot move.

CPU time of a request to a local server moves by tens of microseconds from run to run on a
shared virtual machine, as much as the instrumentation being measured. Callgrind counts the
instructions the process executes instead, the same for the same work on any load. Each
variant of a benchmark runs twice in a child process (``benchmarks._count_child``), with
``SHORT`` and ``LONG`` operations; the difference divided by ``LONG - SHORT`` is the cost of
one operation, with start-up, set-up and teardown cancelled out. Everything the process
does counts, the export thread included; the server runs in its own process, outside
callgrind.

Instructions are not time: code that misses the caches costs more per instruction, and
amid the work of a real request an instrumentation's few instructions run colder than in
a tight loop. The timed tables stay the measure of cost; this one shows how much work each
side adds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from benchmarks._harness import Scale
from benchmarks._report import Section

__all__ = ["BENCHMARKS", "count", "run"]

#: The timed benchmarks counted, and the roles of their variants.
BENCHMARKS = ("httpx-get", "requests-get", "urllib3-get")
ROLES = ("bare", "tracekit", "peer")
_COLLECTED = re.compile(r"Collected : (\d+)")


@dataclass(frozen=True)
class _Count:
    per_operation: float | None
    problem: str | None = None


def count(benchmark: str, role: str, operations: int) -> int:
    """Instructions the child executes for ``operations`` operations of one variant."""
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-m",
            "benchmarks._count_child",
            benchmark,
            role,
            str(operations),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    found = _COLLECTED.findall(done.stderr)
    if done.returncode != 0 or not found:
        lines = [line for line in done.stderr.splitlines() if not line.startswith("==")]
        raise RuntimeError((lines or [f"exit status {done.returncode}"])[-1])
    return int(found[-1])


def _per_operation(benchmark: str, role: str, short: int, long: int) -> _Count:
    try:
        return _Count((count(benchmark, role, long) - count(benchmark, role, short)) / (long - short))
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return _Count(None, f"failed: {exc}")


def _row(benchmark: str, counts: dict[str, _Count]) -> str:
    cells = [f"`{benchmark}`", *(_cell(counts[role]) for role in ROLES)]
    bare, tracekit, peer = (counts[role].per_operation for role in ROLES)
    if bare is not None and tracekit is not None and peer is not None and peer > bare:
        cells += [
            f"+{(tracekit - bare) / 1e3:,.0f}k",
            f"+{(peer - bare) / 1e3:,.0f}k",
            f"{(tracekit - bare) / (peer - bare):.2f}",
        ]
    else:
        cells += ["", "", ""]
    return "| " + " | ".join(cells) + " |"


def _cell(result: _Count) -> str:
    if result.per_operation is None:
        return result.problem or "no data"
    return f"{result.per_operation / 1e3:,.0f}k"


def run(scale: Scale, log: Callable[[str], None] = print) -> list[Section]:
    title = "### Instructions per operation (`instructions`)\n\n"
    if shutil.which("valgrind") is None:
        body = title + "Not measured: valgrind is not installed (`apt-get install valgrind`).\n"
        return [Section("instructions", "instructions", "Instructions per operation", body)]
    short, long = (20, 60) if scale.quick else (100, 500)
    cases = [(benchmark, role) for benchmark in BENCHMARKS for role in ROLES]
    # Counting is deterministic whatever else runs, so the cores are all used.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        futures = {case: pool.submit(_per_operation, *case, short, long) for case in cases}
        results = {case: future.result() for case, future in futures.items()}
    log(f"  instructions: {len(cases) * 2} runs under callgrind done")
    lines = [
        title.rstrip("\n"),
        "",
        f"Instructions executed per operation, counted by callgrind (valgrind) over {long - short} "
        f"operations: each variant of the timed benchmark runs once with {short} and once with {long} "
        "operations after its warm-up, in a fresh process, and the difference is divided by the "
        "difference. Same set-up, switching and span count check as the timed run; the export thread "
        "counts, the local server (another process) does not. Counts repeat to within a few "
        "instructions per operation from run to run.",
        "",
        "| benchmark | bare | tracekit | peer | tracekit over bare | peer over bare "
        "| tracekit's added instructions ÷ peer's |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [_row(benchmark, {role: results[benchmark, role] for role in ROLES}) for benchmark in BENCHMARKS]
    lines += [
        "",
        "Instructions are not time: the same instructions cost more when they miss the caches, and "
        "an instrumentation's code runs colder amid the work of a real request than in a tight loop. "
        "The timed tables above are the cost; this table is the work each side adds, free of the "
        "machine's noise.",
        "",
    ]
    return [Section("instructions", "instructions", "Instructions per operation", "\n".join(lines))]
