"""Markdown for the results: one table per workload, the machine, the versions, the budgets."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from benchmarks._budgets import Verdict
from benchmarks._harness import BenchmarkResult, summarize
from benchmarks.load._report import kept_blocks

__all__ = ["Section", "format_quantity", "load_average", "render_benchmark", "render_document"]

#: Distributions whose versions decide the figures.
DISTRIBUTIONS = (
    "tracekit",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-http",
    "opentelemetry-exporter-otlp-proto-grpc",
    "opentelemetry-instrumentation",
    "opentelemetry-instrumentation-httpx",
    "opentelemetry-instrumentation-requests",
    "opentelemetry-instrumentation-urllib3",
    "opentelemetry-instrumentation-asgi",
    "opentelemetry-instrumentation-fastapi",
    "opentelemetry-instrumentation-wsgi",
    "opentelemetry-instrumentation-flask",
    "opentelemetry-distro",
    "httpx",
    "requests",
    "urllib3",
    "fastapi",
    "starlette",
    "flask",
    "werkzeug",
    "grpcio",
    "protobuf",
    "wrapt",
)

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Section:
    """A workload whose table is not the standard one (throughput, memory)."""

    name: str
    family: str
    title: str
    body: str


def format_quantity(seconds: float, unit: str) -> str:
    """``seconds`` in ``unit`` (µs or ms), with as many decimals as are meaningful."""
    value = seconds * (1e6 if unit == "µs" else 1e3)
    magnitude = abs(value)
    if magnitude >= 100:
        text = f"{value:.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}"


def _signed(seconds: float, unit: str) -> str:
    text = format_quantity(seconds, unit)
    return text if seconds < 0 else "+" + text


_CLOCKS = {"cpu": "CPU time of this process", "wall": "wall time"}


def render_benchmark(result: BenchmarkResult) -> str:
    """The table of one timed benchmark."""
    bench = result.benchmark
    lines = [f"### {bench.title} (`{bench.name}`)", "", bench.description, ""]
    if result.error is not None:
        lines += [f"**Could not run:** {result.error}", ""]
        return "\n".join(lines)
    clock = _CLOCKS[bench.clock]
    other = _CLOCKS["wall" if bench.clock == "cpu" else "cpu"]
    lines += [
        f"{bench.rounds} rounds x {bench.iterations} operations per variant, interleaved; times are "
        f"{clock}. Switching: {bench.switching}.",
        "",
        "| variant | per operation (median) | min to max over rounds | overhead over bare | "
        "overhead ÷ peer's |" + (f" {other} (median) |" if bench.show_other_clock else ""),
        "| --- | --- | --- | --- | --- |" + (" --- |" if bench.show_other_clock else ""),
    ]
    peer = result.overhead("peer")
    for variant in result.variants:
        if not variant.available:
            blank = " |" * (4 if bench.show_other_clock else 3)
            lines.append(f"| {variant.label} | {variant.unavailable or 'no data'} |{blank}")
            continue
        summary = summarize(variant.per_op)
        overhead = result.overhead_of(variant)
        overhead_text = "—" if variant.role == "bare" or overhead is None else _signed(overhead, bench.unit)
        ratio_text = ""
        if (
            variant.role in ("tracekit", "reference")
            and overhead is not None
            and peer is not None
            and peer > 0
        ):
            ratio_text = f"{overhead / peer:.2f}"
        lines.append(
            f"| {variant.label} | {format_quantity(summary.median, bench.unit)} | "
            f"{format_quantity(summary.low, bench.unit)} to {format_quantity(summary.high, bench.unit)} | "
            f"{overhead_text} | {ratio_text} |"
            + (
                f" {format_quantity(summarize(variant.other_clock).median, bench.unit)} |"
                if bench.show_other_clock
                else ""
            )
        )
    lines.append("")
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--", "src"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (" (src/ has uncommitted changes)" if dirty else "")


def command_line(argv: Sequence[str]) -> str:
    """The command that produced the run, as a user would type it."""
    if os.environ.get("NOX_CURRENT_SESSION") == "bench":
        return "nox -s bench" + (" -- " + " ".join(argv) if argv else "")
    return " ".join(["python -m benchmarks", *argv])


def load_average() -> str:
    """The 1-minute load average, or "unknown"; other work on the machine widens the ranges."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def render_environment(argv: Sequence[str], elapsed: float, load_before: str) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"- Command: `{command_line(argv)}` (from the repository root; took {elapsed / 60:.1f} minutes)",
        f"- Date: {now}; tracekit at commit {_commit()}",
        f"- Machine: {_cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
        f"load average {load_before} when the run started, {load_average()} when it ended",
        f"- Python: {platform.python_implementation()} {platform.python_version()}",
        "- Versions: "
        + ", ".join(f"{name} {version}" for name in DISTRIBUTIONS if (version := _version(name)) is not None),
    ]
    return "\n".join(lines)


def render_budgets(verdicts: Sequence[Verdict]) -> str:
    lines = []
    for verdict in verdicts:
        budget = verdict.budget
        lines.append(f"- **{verdict.status}**: {budget.text} (issue {budget.issue}): {verdict.figures}")
    return "\n".join(lines)


_INTRO = """\
# Performance

tracekit is measured side by side with OpenTelemetry Python's own SDK and contrib
instrumentations, and with the bare, uninstrumented code, in one process: each benchmark runs
its variants interleaved in rounds (the order rotates every round), so drift of the machine
hits all of them alike. Figures are per operation: the median over rounds and the range.
Times are the CPU time of the benchmark process (all its threads, so span export counts)
unless a table says wall time: CPU time is what the work costs and does not move when other
processes compete for the cores; the median wall time is shown alongside. "Overhead over
bare" is the median of the round-by-round differences to the bare variant of the same round;
"overhead ÷ peer's" divides a variant's overhead by the OpenTelemetry peer's.
Spans go to an exporter that drops them unless a benchmark says otherwise; every root span is
sampled (parent-based, always on) on both sides. The suite lives in `benchmarks/`; run it with
`nox -s bench` (all of it, which rewrites this page), `nox -s bench -- --quick` (a smoke
run) or `nox -s bench -- decorator` (one family). Both sides' export queues hold 65,536
spans, so that no round drops spans (a round that did would not count).

A request to a local server costs a few hundred microseconds, and on a shared virtual machine
that figure moves by tens of microseconds from run to run, as much as an instrumentation adds.
The HTTP client benchmarks therefore run 41 rounds, and the last table counts the
instructions and first-level cache misses each side adds per request with callgrind and its
cache simulation (`nox -s bench -- instructions`), figures that repeat exactly whatever the
machine is doing.

The last section, *A service under load*, measures a deployed service rather than one
operation: FastAPI on uvicorn and Flask on gunicorn, pinned to one core and driven by wrk from
the other, untraced and under tracekit, the OpenTelemetry agent (`opentelemetry-instrument`)
and ddtrace (`ddtrace-run`). It counts everything such a service pays (the export thread's
encoding and HTTP, garbage collection, the interpreter lock) and checks that every span
arrives. `nox -s load` makes it (about 35 minutes) and rewrites only that section, which
`nox -s bench` keeps; `nox -s load -- --rounds 1 --seconds 2` is a quick look and
`nox -s load -- --soak 600` the ten-minute memory soak.

Where tracekit's lower cost comes from: its integrations and decorators make the SDK's own
span objects through tracekit's tracer (`tracekit/_tracer.py`), which does less per span than
the SDK's tracer while producing the same data. Attributes that tracekit's code built (exact
`str`, `bool`, `int` or `float` values, with no limit that could change them) are stored
without being validated again; the samplers the specification defines are decided in line;
a span's event and link lists are made only when something is added; and an ended span is
handed to the span processors as it is rather than copied. Differential tests
(`tests/test_tracer.py`) check that the exported spans equal the SDK tracer's, under default
and tight limits, for each sampler. In a service the saving also shows as less memory held
per queued span (an HTTP client span with its six attributes: about 1.0 KB, against 3.0 KB
from the SDK's tracer, by `tracemalloc`), which matters more than the instructions
themselves: a span costs a few microseconds in a tight loop and several times that amid the
work of a real request, where the memory it writes is seldom still in the caches.
"""


def render_document(
    sections: Sequence[BenchmarkResult | Section],
    verdicts: Sequence[Verdict],
    argv: Sequence[str],
    elapsed: float,
    load_before: str,
) -> str:
    parts = [_INTRO, "## How these figures were made", "", render_environment(argv, elapsed, load_before), ""]
    parts += ["## Budgets", "", render_budgets(verdicts), ""]
    family = None
    for section in sections:
        current = section.benchmark.family if isinstance(section, BenchmarkResult) else section.family
        if current != family:
            family = current
            parts += [f"## {FAMILY_TITLES.get(current, current)}", ""]
        parts.append(render_benchmark(section) if isinstance(section, BenchmarkResult) else section.body)
    kept = kept_blocks(ROOT / "docs" / "performance.md")
    if kept:
        parts += ["", kept]
    return "\n".join(parts).rstrip() + "\n"


FAMILY_TITLES = {
    "decorator": "Decorated functions",
    "span": "span() blocks",
    "propagation": "Propagation",
    "http-clients": "HTTP clients",
    "http-servers": "HTTP servers (in process)",
    "kafka": "Kafka producers",
    "databases": "Database clients",
    "whole-request": "A whole request",
    "startup": "Start-up",
    "export": "Export throughput",
    "fork": "Forking",
    "instructions": "Instructions per operation",
}
