"""Forking a process that traces: the at-fork path, and a child's first exported span.

Pre-fork servers (gunicorn, uWSGI), Celery's prefork pool and multiprocessing's ``fork``
start method fork a process in which tracing is configured. tracekit's at-fork work in the
child (``tracekit._fork.run_child_hooks``: release its locks, empty the batch processor's
queue, drop the OTLP exporter's connection) runs before the child's own code, in every
child; its first span then refreshes the resource's ``process.pid`` and
``service.instance.id``, starts an export thread and builds an exporter. This family
measures both against a bare process (same imports, no tracing) and the OpenTelemetry SDK
set up by hand.

Each run is a process of its own (``benchmarks._fork_child``), so that no variant's at-fork
handlers linger in another's; it forks its children one after another, each of which makes
one span, exports it with ``force_flush()`` to a local OTLP/HTTP receiver and leaves with
``os._exit()``. The receiver is tracekit's ``OTLPReceiver``, in this process; it checks that
every span arrived, with the child's own ``process.pid`` where the resource has one. Runs are
interleaved: every round runs every variant once, in rotated order.
"""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from benchmarks._fork_fields import COUNTS as _COUNTS
from benchmarks._fork_fields import FIELDS
from benchmarks._harness import Benchmark, BenchmarkResult, Role, Scale, Variant, VariantResult, rotated
from benchmarks._report import Section, format_quantity

if TYPE_CHECKING:
    from tracekit._receiver import ReceivedSpan
    from tracekit.testing import OTLPReceiver

__all__ = ["VARIANTS", "p95", "run"]

#: ``benchmarks._fork_child`` variant, label, role.
VARIANTS: tuple[tuple[str, str, Role], ...] = (
    ("bare", "bare (no tracing)", "bare"),
    ("tracekit", "tracekit", "tracekit"),
    ("tracekit-cold", "tracekit, no span yet in the parent", "reference"),
    ("opentelemetry", "OpenTelemetry SDK", "peer"),
)
#: Variants whose parent exported a span before forking (it arrives too).
_PARENT_EXPORTS = ("tracekit", "opentelemetry")
#: A whole run's time limit; the run's children each have a limit of their own.
_TIMEOUT = 300.0


@dataclass
class _Runs:
    """One variant's figures over every run: per child (seconds, or page faults), and each run's
    median at-fork time."""

    figures: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in FIELDS})
    per_round: list[float] = field(default_factory=list)
    received: int = 0
    own_pid: int | None = None
    children: int = 0
    problem: str | None = None


def p95(samples: Sequence[float]) -> float:
    """The 95th percentile of ``samples`` (at least one), by nearest rank."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _run_child(variant: str, url: str, forks: int) -> Mapping[str, object]:
    """One run of ``benchmarks._fork_child``: its JSON line.

    The run is a session of its own, so that on a timeout it is killed with every child it
    may have left.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._fork_child", variant, url, str(forks)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise RuntimeError(f"the run took longer than {_TIMEOUT:g} s (killed)") from None
    if process.returncode != 0:
        last = (stderr.strip().splitlines() or [f"exit status {process.returncode}"])[-1]
        raise RuntimeError(last)
    result: Mapping[str, object] = json.loads(stdout.strip().splitlines()[-1])
    return result


def _own_pids(spans: Sequence[ReceivedSpan], pids: Sequence[int]) -> int | None:
    """How many of the children ``pids`` sent a span with their own ``process.pid``; ``None``
    when no span carries one (the SDK's default resource has none)."""
    seen = {span.resource.get("process.pid") for span in spans}
    if seen == {None}:
        return None
    return len(seen & set(pids))


def _record(variant: str, receiver: OTLPReceiver, forks: int, runs: _Runs) -> None:
    """Run ``variant`` once against ``receiver`` and keep its figures, or say why there are none."""
    receiver.clear()
    try:
        result = _run_child(variant, receiver.http_endpoint, forks)
    except (OSError, RuntimeError, ValueError) as exc:
        runs.problem = f"failed: {exc}"
        return
    expected = 0 if variant == "bare" else forks + (variant in _PARENT_EXPORTS)
    received = receiver.span_count
    if received != expected:
        runs.problem = f"the receiver got {received} of {expected} spans"
        return
    figures: Mapping[str, list[int]] = result["figures"]  # type: ignore[assignment]
    pids: list[int] = result["pids"]  # type: ignore[assignment]
    for name in FIELDS:
        unit = 1.0 if name in _COUNTS else 1e-9
        runs.figures[name].extend(value * unit for value in figures[name])
    runs.per_round.append(statistics.median(figures["fork_to_child"]) / 1e9)
    runs.children += len(pids)
    runs.received += received
    if variant != "bare":
        own = _own_pids(receiver.spans, pids)
        runs.own_pid = None if own is None else (runs.own_pid or 0) + own


def _not_run_by_the_harness() -> AbstractContextManager[Sequence[Variant]]:
    raise RuntimeError("the fork benchmark is run by benchmarks.fork.run, not by the harness")


def _benchmark(rounds: int, forks: int) -> Benchmark:
    """The at-fork path as a timed benchmark: the standard table, and the budget's figures."""
    return Benchmark(
        name="fork-at-fork",
        family="fork",
        title="At-fork path: fork() to the child's first line",
        description="Wall time from just before `os.fork()` in the parent to the first line of the "
        "child's code: the parent's before-fork handlers, the system call, CPython's re-initialisation "
        "of the child and every after-fork handler registered in the child. Per operation: the median "
        "over a round's children. The parent is a process of its own per variant and round; "
        "tracekit's and the SDK's parents exported a span before forking (their export threads run). "
        "See the next table for where the time goes.",
        switching=f"one process per variant and round, forking {forks} children one after another",
        setup=_not_run_by_the_harness,
        rounds=rounds,
        iterations=forks,
        warmup=0,
        unit="µs",
        clock="wall",
        show_other_clock=False,
    )


def _pair(samples: Sequence[float]) -> str:
    """Median and 95th percentile, in microseconds."""
    return f"{format_quantity(statistics.median(samples), 'µs')} / {format_quantity(p95(samples), 'µs')}"


def _ms_pair(samples: Sequence[float]) -> str:
    return f"{format_quantity(statistics.median(samples), 'ms')} / {format_quantity(p95(samples), 'ms')}"


def _faults(samples: Sequence[float]) -> str:
    return f"{statistics.median(samples):,.0f}"


def _at_fork_row(label: str, runs: _Runs) -> str:
    if runs.problem is not None or not runs.children:
        return f"| {label} | {runs.problem or 'no data'} | | | | | | |"
    figures = runs.figures
    return (
        f"| {label} | {_pair(figures['fork_to_child'])} | {_pair(figures['parent_before'])} | "
        f"{_pair(figures['handlers'])} | {_pair(figures['child_hooks'])} | "
        f"{_pair(figures['child_hooks_again'])} | {_faults(figures['child_faults_at_fork'])} | "
        f"{_pair(figures['parent_fork_call'])} |"
    )


def _first_span_row(variant: str, label: str, runs: _Runs, bare: _Runs) -> str:
    if runs.problem is not None or not runs.children:
        return f"| {label} | {runs.problem or 'no data'} | | | | | | |"
    figures = runs.figures
    cpu = statistics.median(figures["child_cpu"])
    added = "—"
    if variant != "bare" and bare.problem is None and bare.children:
        added = "+" + format_quantity(cpu - statistics.median(bare.figures["child_cpu"]), "ms")
    if variant == "bare":
        arrived = "—"
    else:
        own = "no `process.pid`" if runs.own_pid is None else f"{runs.own_pid:,} with their own `process.pid`"
        arrived = f"{runs.received:,} spans for {runs.children:,} children; {own}"
    exported = "—" if variant == "bare" else _ms_pair(figures["fork_to_exported"])
    return (
        f"| {label} | {exported} | {_ms_pair(figures['child_wall'])} | "
        f"{_ms_pair(figures['child_cpu_at_fork'])} | {_ms_pair(figures['child_cpu'])} | {added} | "
        f"{_faults(figures['child_faults'])} | {arrived} |"
    )


def _section(results: Mapping[str, _Runs], rounds: int, forks: int, clock: str, elapsed: float) -> Section:
    labels = {variant: label for variant, label, _ in VARIANTS}
    bare = results["bare"]
    lines = [
        "### Where the at-fork time goes, and a child's first span (`fork`)",
        "",
        f"{rounds} rounds x {forks} children per variant ({rounds * forks} forks each), median / 95th "
        f"percentile over all of them; {elapsed:.0f} s in all. The parent forks a child 20 ms after the "
        "last one exited, so that the receiver is done with that child's connection. Timestamps are "
        f"`time.perf_counter_ns()`, here `{clock}`: one clock for the whole machine, so a child's "
        "reading minus its parent's is the time between them (every child's reading was checked to be "
        "the later). CPU times are the "
        "child's `time.process_time_ns()`, which starts at zero in a new process: all of the child's "
        "threads, the export thread included.",
        "",
        "The at-fork path, in µs. *Before-fork handlers*: the parent's, from just before `os.fork()`. "
        "*Child's at-fork handlers*: from the first after-fork handler registered after `threading`'s "
        "to the child's first line. *tracekit's child hooks*: `run_child_hooks()`, the first of those "
        "handlers; *again*: the same hooks forced to run a second time, at the end of the child (warm "
        "caches, the pages they write already copied). *Page faults*: the child's minor faults by its "
        "first line (median), nearly all copy-on-write copies of its parent's pages, each of which "
        "costs microseconds. *Parent's `os.fork()`*: until the call returns in the parent.",
        "",
        "| variant | fork() to the child's first line | before-fork handlers (parent) "
        "| child's at-fork handlers | of which tracekit's child hooks | child hooks again, warm "
        "| page faults | parent's `os.fork()` call |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [_at_fork_row(labels[variant], results[variant]) for variant, _, _ in VARIANTS]
    lines += [
        "",
        "The child's first span, in ms: the child makes one span and calls `force_flush()` at once "
        "(`OTEL_BSP_SCHEDULE_DELAY` does not come into it); the flush returns once the receiver has "
        "answered the export request. The bare child makes a span with a no-op tracer and flushes "
        "nothing. *Fork to first span exported*: from just before `os.fork()` in the parent to the "
        "end of the child's flush. *Child's wall time*: from its first line to the end of its flush. "
        "*Child CPU*: by its first line (the at-fork path), and by the end of its flush.",
        "",
        "| variant | fork() to first span exported | child's wall time to its span exported "
        "| child CPU by its first line | child CPU to its span exported | child CPU over bare "
        "| page faults to its span exported | spans received |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [_first_span_row(variant, labels[variant], results[variant], bare) for variant, _, _ in VARIANTS]
    lines += [
        "",
        "A tracekit child drops the exporter it inherited and builds its own, with a connection of its "
        "own, on its first export; the SDK's child goes on with the HTTP session (and the connection) "
        "it inherited from its parent. The spans received include those the parents exported before "
        "forking.",
        "",
    ]
    return Section("fork", "fork", "Forking", "\n".join(lines))


def _benchmark_result(benchmark: Benchmark, results: Mapping[str, _Runs]) -> BenchmarkResult:
    variants = []
    for variant, label, role in VARIANTS:
        runs = results[variant]
        result = VariantResult(label, role)
        if runs.problem is not None or not runs.per_round:
            result.unavailable = runs.problem or "no data"
        else:
            result.per_op = list(runs.per_round)
        variants.append(result)
    return BenchmarkResult(benchmark, variants)


def _unavailable(benchmark: Benchmark, reason: str) -> list[BenchmarkResult | Section]:
    title = "### Where the at-fork time goes, and a child's first span (`fork`)\n\n"
    return [
        BenchmarkResult(benchmark, [], error=reason),
        Section("fork", "fork", "Forking", title + f"Not measured: {reason}\n"),
    ]


def _clock_problem() -> str | None:
    """Why a child's timestamps cannot be compared with its parent's here, if they cannot."""
    if not hasattr(os, "fork") or not hasattr(os, "register_at_fork"):
        return "this platform has no os.fork()"
    implementation = time.get_clock_info("perf_counter").implementation
    if "CLOCK_MONOTONIC" not in implementation:
        return f"time.perf_counter() is {implementation}, not CLOCK_MONOTONIC"
    return None


def _receiver(forks: int) -> AbstractContextManager[OTLPReceiver]:
    """tracekit's OTLP receiver on 127.0.0.1, keeping every request of a run."""
    from tracekit.testing import OTLPReceiver

    return OTLPReceiver(max_requests=forks + 16)


def run(scale: Scale, log: Callable[[str], None] = print) -> list[BenchmarkResult | Section]:
    rounds = scale.rounds(5)
    forks = 10 if scale.quick else 40
    benchmark = _benchmark(rounds, forks)
    problem = _clock_problem()
    if problem is not None:
        return _unavailable(benchmark, problem)
    try:
        local_receiver = _receiver(forks)
    except ImportError as exc:
        return _unavailable(benchmark, f"tracekit.testing.OTLPReceiver: {exc}")
    results = {variant: _Runs() for variant, _, _ in VARIANTS}
    started = time.perf_counter()
    with local_receiver as receiver:
        for round_index in range(rounds):
            for index in rotated(list(range(len(VARIANTS))), round_index):
                variant = VARIANTS[index][0]
                if results[variant].problem is None:
                    _record(variant, receiver, forks, results[variant])
            log(f"  fork: round {round_index + 1}/{rounds} done")
    elapsed = time.perf_counter() - started
    clock = time.get_clock_info("perf_counter").implementation
    return [
        _benchmark_result(benchmark, results),
        _section(results, rounds, forks, clock, elapsed),
    ]
