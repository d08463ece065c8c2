"""Export throughput to a local OTLP receiver over http/protobuf and gRPC, with peak memory.

Each run is a process of its own (``benchmarks._export_child``), so that its peak memory
belongs to one variant only. The receiver is tracekit's own
``OTLPReceiver`` (it decodes every request into the official protobuf messages) and runs in
this process, on the other core, while the child works. Runs are interleaved: every repeat
runs every protocol and variant once, in rotated order.
"""

from __future__ import annotations

import json
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from benchmarks._export_child import WARM_UP
from benchmarks._harness import Scale, Unavailable, rotated
from benchmarks._report import Section

__all__ = ["Endpoints", "local_receiver", "run"]

PROTOCOLS = ("http/protobuf", "grpc")
VARIANTS = (("tracekit", "tracekit"), ("opentelemetry", "OpenTelemetry SDK"), ("bare", "bare (no-op tracer)"))


@dataclass(frozen=True)
class Endpoints:
    http: str
    grpc: str
    count: Callable[[], int]
    clear: Callable[[], None]


@contextmanager
def local_receiver() -> Iterator[Endpoints]:
    """tracekit's OTLP receiver on 127.0.0.1; Unavailable if it cannot be imported."""
    try:
        from tracekit._receiver import OTLPReceiver
    except ImportError as exc:
        raise Unavailable(f"tracekit._receiver.OTLPReceiver: {exc}") from exc
    with OTLPReceiver(max_requests=8) as receiver:
        yield Endpoints(
            receiver.http_endpoint, receiver.grpc_endpoint, lambda: receiver.span_count, receiver.clear
        )


@dataclass
class _Runs:
    seconds: list[float] = field(default_factory=list)
    making: list[float] = field(default_factory=list)
    peak_kib: list[int] = field(default_factory=list)
    receiver_cpu: list[float] = field(default_factory=list)
    export_cpu: list[float] = field(default_factory=list)
    problem: str | None = None


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run_child(variant: str, protocol: str, receiver: Endpoints, spans: int, runs: _Runs) -> None:
    url = receiver.grpc if protocol == "grpc" else receiver.http
    receiver.clear()
    cpu_before, wall_before = _cpu_seconds(), time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks._export_child", variant, protocol, url, str(spans)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    cpu, wall = _cpu_seconds() - cpu_before, time.perf_counter() - wall_before
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        runs.problem = f"failed: {last}"
        return
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    expected = 0 if variant == "bare" else spans + WARM_UP
    received = receiver.count()
    if received != expected:
        runs.problem = f"the receiver got {received} of {expected} spans"
        return
    runs.seconds.append(figures["seconds"])
    runs.making.append(figures["making_seconds"])
    runs.peak_kib.append(figures["peak_kib"])
    if figures.get("export_cpu_seconds") is not None:
        runs.export_cpu.append(figures["export_cpu_seconds"])
    runs.receiver_cpu.append(cpu / wall)


def _row(label: str, protocol: str, variant: str, runs: _Runs, spans: int) -> str:
    if runs.problem is not None or not runs.peak_kib:
        return f"| {protocol} | {label} | {runs.problem or 'no data'} | | | | |"
    memory = f"{statistics.median(runs.peak_kib) / 1024:.1f} MiB"
    if variant == "bare":
        return f"| {protocol} | {label} | — | — | — | {memory} | — |"
    rates = [spans / s for s in runs.seconds]
    making = statistics.median(runs.making) / spans * 1e6
    receiver = statistics.median(runs.receiver_cpu)
    return (
        f"| {protocol} | {label} | {statistics.median(rates):,.0f} | "
        f"{min(rates):,.0f} to {max(rates):,.0f} | {making:.1f} µs | {memory} | {receiver:.0%} |"
    )


def run(scale: Scale, log: Callable[[str], None] = print) -> list[Section]:
    spans = 2_000 if scale.quick else 15_000
    repeats = scale.rounds(4)
    title = "### Export throughput to a local OTLP receiver (`export`)\n\n"
    cases = [(protocol, variant) for protocol in PROTOCOLS for variant, _ in VARIANTS]
    results = {case: _Runs() for case in cases}
    with ExitStack() as stack:
        try:
            receiver = stack.enter_context(local_receiver())
        except Unavailable as exc:
            return [Section("export", "export", "Export throughput", title + f"Not available: {exc}\n")]
        for repeat in range(repeats):
            for index in rotated(list(range(len(cases))), repeat):
                if results[cases[index]].problem is None:
                    _run_child(cases[index][1], cases[index][0], receiver, spans, results[cases[index]])
            log(f"  export: repeat {repeat + 1}/{repeats} done")
    labels = dict(VARIANTS)
    lines = [
        title.rstrip("\n"),
        "",
        f"{spans:,} sampled spans (three attributes each) made as fast as one thread can and flushed "
        "to the receiver, in a fresh process per run; throughput counts from the first span to the end "
        "of the flush, once every span has arrived (the receiver's count is checked). Both sides use "
        f"batches of 512 and a queue of {spans:,}, so nothing is dropped. Medians of {repeats} runs.",
        "",
        "Switching: one subprocess per run. Peak memory is the child's `VmHWM` (peak resident set): on "
        "Linux its `ru_maxrss` would carry over, across `exec`, the peak of the runner that started it.",
        "",
        "| protocol | variant | spans per second (median) | min to max | making a span "
        "| peak memory (VmHWM) | receiver CPU |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        _row(labels[variant], protocol, variant, results[(protocol, variant)], spans)
        for protocol, variant in cases
    ]
    lines += [
        "",
        "The receiver (this process) decodes each request; its CPU use over the run's wall time, near 100% "
        "would mean it, not the exporter, set the pace.",
        "",
    ]
    lines += _throughput_verdicts(results, spans)
    lines += _burst(receiver_factory=local_receiver, scale=scale, log=log)
    lines += _exit(scale=scale, log=log)
    return [Section("export", "export", "Export throughput", "\n".join(lines))]


def _throughput_verdicts(results: dict[tuple[str, str], _Runs], spans: int) -> list[str]:
    """The issue 16 budgets on throughput: at least 4x the SDK, export CPU at most 0.25x."""
    lines = []
    for protocol in PROTOCOLS:
        ours, theirs = results[(protocol, "tracekit")], results[(protocol, "opentelemetry")]
        if ours.problem or theirs.problem or not ours.seconds or not theirs.seconds:
            lines.append(f"- **not measured** ({protocol}): a run failed")
            continue
        rate = statistics.median(theirs.seconds) / statistics.median(ours.seconds)
        verdict = "met" if rate >= 4.0 else "not met"
        lines.append(
            f"- **{verdict}**: {protocol} end to end at least 4x the SDK (issue 16): {rate:.2f}x "
            f"({spans / statistics.median(ours.seconds):,.0f} vs "
            f"{spans / statistics.median(theirs.seconds):,.0f} spans/s)"
        )
        if ours.export_cpu and theirs.export_cpu:
            share = statistics.median(ours.export_cpu) / statistics.median(theirs.export_cpu)
            verdict = "met" if share <= 0.25 else "not met"
            lines.append(
                f"- **{verdict}**: {protocol} export thread CPU per span at most 0.25x the SDK's (issue 16): "
                f"{statistics.median(ours.export_cpu) / spans * 1e6:.1f} µs vs "
                f"{statistics.median(theirs.export_cpu) / spans * 1e6:.1f} µs: {share:.2f}x"
            )
    return ["", *lines, ""]


BURST_THREADS = (1, 8)
BURST_VARIANTS = (
    ("tracekit", "tracekit"),
    ("tracekit-none", "tracekit, no exporter"),
    ("opentelemetry", "OpenTelemetry SDK"),
    ("opentelemetry-none", "OpenTelemetry SDK, no exporter"),
)


def _burst(receiver_factory: Callable[[], Any], scale: Scale, log: Callable[[str], None]) -> list[str]:
    """A burst with default queue and batch settings: what arrives, and what the application pays."""
    spans = 20_000 if scale.quick else 100_000
    repeats = scale.rounds(2)
    delivered: dict[tuple[int, str], list[float]] = {}
    making: dict[tuple[int, str], list[float]] = {}
    peaks: dict[tuple[int, str], list[int]] = {}
    with receiver_factory() as receiver:
        for repeat in range(repeats):
            cases = [(threads, variant) for threads in BURST_THREADS for variant, _ in BURST_VARIANTS]
            for index in rotated(list(range(len(cases))), repeat):
                threads, variant = cases[index]
                receiver.clear()
                done = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks._export_child",
                        variant,
                        "http/protobuf",
                        receiver.http,
                        str(spans),
                        str(threads),
                        "burst",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                )
                if done.returncode != 0:
                    continue
                figures = json.loads(done.stdout.strip().splitlines()[-1])
                made = spans // threads * threads
                delivered.setdefault((threads, variant), []).append((receiver.count() - WARM_UP) / made)
                making.setdefault((threads, variant), []).append(figures["making_seconds"] / made)
                peaks.setdefault((threads, variant), []).append(figures["peak_kib"])
            log(f"  export burst: repeat {repeat + 1}/{repeats} done")
    lines = [
        "#### A burst with default settings",
        "",
        f"{spans:,} spans made as fast as the threads can (after a warm-up of {WARM_UP:,}), default queue "
        "(2,048) and batch (512), OTLP/HTTP to the same receiver; delivered is the share that arrived "
        "(the rest was dropped at the full queue). Time per span is the application's: the wall time of "
        f"making them divided by their number. Medians of {repeats} runs.",
        "",
        "| threads | variant | delivered | application time per span | vs no exporter "
        "| peak memory (VmHWM) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    verdicts = []
    for threads in BURST_THREADS:
        for variant, label in BURST_VARIANTS:
            key = (threads, variant)
            if key not in making:
                lines.append(f"| {threads} | {label} | failed | | | |")
                continue
            per_span = statistics.median(making[key])
            baseline = making.get((threads, variant.split("-")[0] + "-none"))
            own = not variant.endswith("-none")
            ratio = per_span / statistics.median(baseline) if baseline and own else None
            share = f"{statistics.median(delivered[key]):.1%}" if own else "—"
            versus = "—" if ratio is None else f"{ratio:.2f}x"
            memory = f"{statistics.median(peaks[key]) / 1024:.1f} MiB"
            lines.append(f"| {threads} | {label} | {share} | {per_span * 1e6:.1f} µs | {versus} | {memory} |")
            if variant == "tracekit":
                goal = 0.99 if threads == 1 else 0.95
                got = statistics.median(delivered[key])
                verdicts.append(
                    f"- **{'met' if got >= goal else 'not met'}**: burst from {threads} thread(s), at least "
                    f"{goal:.0%} delivered (issue 16): {got:.1%}"
                )
                if ratio is not None:
                    verdicts.append(
                        f"- **{'met' if ratio <= 1.3 else 'not met'}**: burst from {threads} thread(s), the "
                        "application's time per span at most 1.3x its time with no exporter (issue 16): "
                        f"{ratio:.2f}x"
                    )
    return [*lines, "", *verdicts, ""]


EXIT_VARIANTS = (
    ("tracekit", "tracekit"),
    ("opentelemetry", "OpenTelemetry SDK"),
    ("bare", "bare (no tracing)"),
)


def _exit(scale: Scale, log: Callable[[str], None]) -> list[str]:
    """How long a process takes to end after its last line, with a collector and without one."""
    repeats = scale.rounds(5)
    seconds: dict[tuple[str, str], list[float]] = {}
    whole: dict[tuple[str, str], list[float]] = {}
    # The second socket is bound, never listening: connections to it are refused.
    with local_receiver() as receiver, socket.socket() as refusing:
        refusing.bind(("127.0.0.1", 0))
        absent = f"http://127.0.0.1:{refusing.getsockname()[1]}"
        collectors = (("running", receiver.http), ("absent (connection refused)", absent))
        for repeat in range(repeats):
            cases = [(collector, variant) for collector, _ in collectors for variant, _ in EXIT_VARIANTS]
            for index in rotated(list(range(len(cases))), repeat):
                collector, variant = cases[index]
                url = dict(collectors)[collector]
                began = time.time()
                done = subprocess.run(
                    [sys.executable, "-m", "benchmarks._exit_child", variant, url],
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                )
                ended = time.time()
                if done.returncode == 0 and done.stdout.strip():
                    last = float(done.stdout.strip().splitlines()[-1])
                    seconds.setdefault((collector, variant), []).append(ended - last)
                    whole.setdefault((collector, variant), []).append(ended - began)
            log(f"  export exit: repeat {repeat + 1}/{repeats} done")
    lines = [
        "#### Exit: from the last line of the program to the end of the process",
        "",
        "A process makes 5 spans and ends; what runs at exit flushes them (tracekit: its `atexit` flush; "
        "the SDK: its provider's `atexit` shutdown). Wall time from the program's last line to the end of "
        f"the process, as its parent sees it; OTLP/HTTP, default settings. Medians of {repeats} runs, and "
        "the longest; the whole run is from starting the process to its end. tracekit imports its "
        "transport on the export thread, with the first span, so in a process this short that import "
        "falls into the exit time; the SDK imports its exporter before the first span.",
        "",
        "| collector | variant | time to exit (median) | longest | whole run (median) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for collector, _ in collectors:
        for variant, label in EXIT_VARIANTS:
            runs = seconds.get((collector, variant))
            if not runs:
                lines.append(f"| {collector} | {label} | failed | | |")
                continue
            median, longest = statistics.median(runs) * 1000, max(runs) * 1000
            total = statistics.median(whole[(collector, variant)]) * 1000
            lines.append(
                f"| {collector} | {label} | {median:,.0f} ms | {longest:,.0f} ms | {total:,.0f} ms |"
            )
    ours = seconds.get(("absent (connection refused)", "tracekit"))
    bare = seconds.get(("absent (connection refused)", "bare"))
    if ours and bare:
        extra = statistics.median(ours) - statistics.median(bare)
        verdict = "met" if max(ours) - statistics.median(bare) <= 1.0 else "not met"
        lines += [
            "",
            f"- **{verdict}**: with no collector, a process exits within 1 s of its own work (issue 17): "
            f"+{extra * 1000:,.0f} ms over bare (median), longest {max(ours) * 1000:,.0f} ms",
        ]
    return [*lines, ""]
