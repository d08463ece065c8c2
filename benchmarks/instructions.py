"""Instructions and L1 cache misses per operation, counted by callgrind: figures noise cannot move.

CPU time of a request to a local server moves by tens of microseconds from run to run on a
shared virtual machine, as much as the instrumentation being measured. Callgrind instead
counts the instructions the process executes and simulates its first-level caches, the same
for the same work on any load. Each variant of a benchmark runs twice in a child process
(``benchmarks._count_child``), with ``SHORT`` and ``LONG`` operations; the difference divided
by ``LONG - SHORT`` is the cost of one operation, with start-up, set-up and teardown
cancelled out. Everything the process does counts, the export thread included; the server
runs in its own process, outside callgrind.

Amid the work of a real request an instrumentation's code runs with cold caches, so its L1
misses (instruction and data, simulated) track its share of the time better than its
instructions do; neither is time, which the timed tables measure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from benchmarks._harness import Scale
from benchmarks._report import Section

__all__ = ["BENCHMARKS", "Counts", "count", "run"]

#: The timed benchmarks counted, and the roles of their variants.
BENCHMARKS = ("httpx-get", "requests-get", "urllib3-get")
ROLES = ("bare", "tracekit", "peer")
#: Callgrind's events that are first-level cache misses: instruction reads, data reads, writes.
L1_MISSES = ("I1mr", "D1mr", "D1mw")


@dataclass(frozen=True)
class Counts:
    """Instructions and simulated L1 misses, per operation once differenced."""

    instructions: float
    l1_misses: float


@dataclass(frozen=True)
class _Result:
    counts: Counts | None
    problem: str | None = None


def _totals(output: Path) -> Mapping[str, int]:
    events: list[str] = []
    values: list[int] = []
    for line in output.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith(("summary:", "totals:")):
            values = [int(value) for value in line.split()[1:]]
    return dict(zip(events, values, strict=False))


def count(benchmark: str, role: str, operations: int) -> Counts:
    """What the child executes for ``operations`` operations of one variant, in all."""
    with tempfile.TemporaryDirectory() as directory:
        output = Path(directory) / "callgrind.out"
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--cache-sim=yes",
                f"--callgrind-out-file={output}",
                sys.executable,
                "-m",
                "benchmarks._count_child",
                benchmark,
                role,
                str(operations),
            ],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        totals = _totals(output) if output.exists() else {}
    if done.returncode != 0 or "Ir" not in totals:
        lines = [line for line in done.stderr.splitlines() if not line.startswith("==")]
        raise RuntimeError((lines or [f"exit status {done.returncode}"])[-1])
    return Counts(totals["Ir"], sum(totals.get(event, 0) for event in L1_MISSES))


def _per_operation(benchmark: str, role: str, short: int, long: int) -> _Result:
    try:
        low, high = count(benchmark, role, short), count(benchmark, role, long)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return _Result(None, f"failed: {exc}")
    span = long - short
    return _Result(
        Counts((high.instructions - low.instructions) / span, (high.l1_misses - low.l1_misses) / span)
    )


def _row(benchmark: str, results: Mapping[str, _Result]) -> str:
    cells = [f"`{benchmark}`"]
    for role in ROLES:
        counts = results[role].counts
        cells.append(
            results[role].problem or "no data"
            if counts is None
            else f"{counts.instructions / 1e3:,.0f}k / {counts.l1_misses / 1e3:,.1f}k"
        )
    bare, tracekit, peer = (results[role].counts for role in ROLES)
    if bare is None or tracekit is None or peer is None:
        return "| " + " | ".join([*cells, "", ""]) + " |"
    for field in ("instructions", "l1_misses"):
        added = getattr(tracekit, field) - getattr(bare, field)
        peer_added = getattr(peer, field) - getattr(bare, field)
        ratio = f"{added / peer_added:.2f}" if peer_added > 0 else "—"
        cells.append(f"+{added / 1e3:,.1f}k vs +{peer_added / 1e3:,.1f}k: {ratio}")
    return "| " + " | ".join(cells) + " |"


def run(scale: Scale, log: Callable[[str], None] = print) -> list[Section]:
    title = "### Instructions and L1 misses per operation (`instructions`)\n\n"
    if shutil.which("valgrind") is None:
        body = title + "Not measured: valgrind is not installed (`apt-get install valgrind`).\n"
        return [Section("instructions", "instructions", "Instructions per operation", body)]
    short, long = (10, 30) if scale.quick else (50, 250)
    cases = [(benchmark, role) for benchmark in BENCHMARKS for role in ROLES]
    # Counts do not depend on what else runs, so every core is used.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        futures = {case: pool.submit(_per_operation, *case, short, long) for case in cases}
        results = {case: future.result() for case, future in futures.items()}
    log(f"  instructions: {len(cases) * 2} runs under callgrind done")
    lines = [
        title.rstrip("\n"),
        "",
        f"Per operation, counted by callgrind (valgrind) with its cache simulation over {long - short} "
        f"operations: each variant of the timed benchmark runs once with {short} and once with {long} "
        "operations after its warm-up, in a fresh process, and the difference is divided by the "
        "difference. Same set-up, switching and span count check as the timed run; the export thread "
        "counts, the local server (another process) does not. Cells are instructions / first-level "
        "cache misses (instruction reads, data reads and writes, simulated); the last two columns are "
        "what tracekit and the peer add over bare, and tracekit's share of the peer's. The counts "
        "repeat to within a few per operation from run to run.",
        "",
        "| benchmark | bare | tracekit | peer | instructions added | L1 misses added |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [_row(benchmark, {role: results[benchmark, role] for role in ROLES}) for benchmark in BENCHMARKS]
    lines += [
        "",
        "Neither is time: amid the work of a real request an instrumentation's code runs with cold "
        "caches, where each L1 miss costs more than many instructions, so the time it adds tracks its "
        "misses more closely than its instructions. The timed tables above are the cost; this table "
        "is the work each side adds, free of the machine's noise.",
        "",
    ]
    return [Section("instructions", "instructions", "Instructions per operation", "\n".join(lines))]
