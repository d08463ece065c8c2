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
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

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
    expected = 0 if variant == "bare" else spans
    received = receiver.count()
    if received != expected:
        runs.problem = f"the receiver got {received} of {expected} spans"
        return
    runs.seconds.append(figures["seconds"])
    runs.making.append(figures["making_seconds"])
    runs.peak_kib.append(figures["peak_kib"])
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
    return [Section("export", "export", "Export throughput", "\n".join(lines))]
