"""One fork run, in a process of its own: ``python -m benchmarks._fork_child VARIANT URL FORKS``.

Sets VARIANT up, then forks FORKS children one after another. Each child notes the time,
makes one span, exports it with ``force_flush()`` to the OTLP/HTTP receiver at ``URL``,
writes its figures to a pipe and leaves with ``os._exit()``; the parent waits for it before
forking the next one. Prints one JSON line: each figure's value for every child, in
nanoseconds, and the children's process ids.

VARIANT is ``bare`` (the same imports and a no-op tracer: nothing registered for forks but
what importing registers), ``tracekit`` (``tracekit.configure()``, and a span exported before
the first fork, so that the parent's export thread runs and its exporter holds a
connection, as in a pre-fork server's master that has traced), ``tracekit-cold``
(configured, no span yet in the parent: a ``gunicorn --preload`` master) or
``opentelemetry`` (the SDK's ``TracerProvider``, ``BatchSpanProcessor`` and OTLP/HTTP
exporter set up by hand, a span exported first).

Timestamps are ``time.perf_counter_ns()``, which on Linux reads ``CLOCK_MONOTONIC``: one
clock for the whole machine, so a child's reading minus the parent's taken just before
``os.fork()`` is the time between them. CPU times are the child's
``time.process_time_ns()``: a new process starts its CPU accounting at zero, so that is the
CPU the child has used since ``fork()``, every thread (the export thread too) included.

The parent's ``before`` handlers run in the reverse order of registration, the child's
handlers in the order of registration. So this module registers marks, each noting the
time, before anything that registers a handler is imported (only ``threading`` comes
earlier): ``before``, which runs last in the parent, just before the system call (the child
inherits its reading); and ``handlers`` and ``hooks_end`` on either side of
``import tracekit._fork``, so that tracekit's ``run_child_hooks`` is the only handler between
them. The at-fork path thus splits into the parent's ``before`` handlers, the system call with
CPython's own re-initialisation of the child, and the child's handlers, of which tracekit's
child hooks come first.
"""

from __future__ import annotations

import os
import threading  # noqa: F401  its at-fork handler (thread bookkeeping) comes before the marks
import time
from collections.abc import Callable

#: ``before`` (in the parent), ``handlers``, ``hooks_end`` (in the child): perf_counter_ns()
#: when each mark ran.
_MARKS = [0, 0, 0]


def _mark(index: int) -> Callable[[], None]:
    def mark() -> None:
        _MARKS[index] = time.perf_counter_ns()

    return mark


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_mark(0))
    os.register_at_fork(after_in_child=_mark(1))
import tracekit._fork  # noqa: E402  registers run_child_hooks, between the two marks

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_mark(2))

# Everything else after the marks: what these imports register runs within ``handlers``, alike
# for every variant, since every variant imports the same.
import json  # noqa: E402
import resource  # noqa: E402
import select  # noqa: E402
import signal  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from typing import NoReturn  # noqa: E402

# Imported by every variant, used by some: the bare variant's process holds the same code.
import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: E402
import opentelemetry.sdk.trace.export  # noqa: E402, F401
import requests  # noqa: E402, F401
from opentelemetry import trace  # noqa: E402

import tracekit  # noqa: E402
from benchmarks._fork_fields import FIELDS  # noqa: E402
from tracekit import _sdk, _state  # noqa: E402, F401

__all__ = ["main"]

#: A child's figures, in the order it writes them: the three marks, then its first line
#: (time, CPU, page faults), the end of its flush (time, CPU, page faults), a second, forced
#: run of the child hooks (nanoseconds; warm caches, the pages they write already copied),
#: and whether the flush succeeded.
_RECORD = struct.Struct("<11q")
#: How long a child may take to send its figures before it is killed (a hung at-fork hook).
CHILD_TIMEOUT = 15.0
#: The child's flush time limit, in seconds.
FLUSH_TIMEOUT = 10.0
#: Seconds between a child's exit and the next fork: the receiver is done with the last
#: child's connection and the cores are idle when the next fork is timed, for every variant.
PAUSE = 0.02

#: Makes the child's span and exports it; ``True`` once the receiver has it.
Work = Callable[[], bool]


def _traced(tracer: trace.Tracer, flush: Callable[[], bool]) -> Work:
    def work() -> bool:
        with tracer.start_as_current_span("fork-child"):
            pass
        return flush()

    return work


def _bare(url: str) -> Work:
    # The same imports as the measured variants (at the top of this module), and nothing else.
    return _traced(trace.NoOpTracer(), lambda: True)


def _tracekit(url: str, *, warm: bool = True) -> Work:
    tracing = tracekit.configure(
        exporters=["otlp"],
        protocol="http/protobuf",
        endpoint=url,
        sampler="parentbased_always_on",
        instrument=False,
        service_name="benchmarks",
    )
    work = _traced(_state.tracer, lambda: tracing.force_flush(timeout=FLUSH_TIMEOUT))
    if warm and not work():
        raise RuntimeError("the parent's span was not exported")
    return work


def _tracekit_cold(url: str) -> Work:
    return _tracekit(url, warm=False)


def _opentelemetry(url: str) -> Work:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({"service.name": "benchmarks"}), shutdown_on_exit=False
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url.rstrip("/") + "/v1/traces")))
    work = _traced(provider.get_tracer("benchmarks"), lambda: provider.force_flush(int(FLUSH_TIMEOUT * 1000)))
    if not work():
        raise RuntimeError("the parent's span was not exported")
    return work


VARIANTS: dict[str, Callable[[str], Work]] = {
    "bare": _bare,
    "tracekit": _tracekit,
    "tracekit-cold": _tracekit_cold,
    "opentelemetry": _opentelemetry,
}


def _hooks_again() -> int:
    """Nanoseconds for tracekit's child hooks run a second time in this child (forced)."""
    tracekit._fork._pid = -1
    start = time.perf_counter_ns()
    tracekit._fork.run_child_hooks()
    return time.perf_counter_ns() - start


def _faults() -> int:
    """This process's minor page faults so far: a new process starts counting at zero."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _child(write_end: int, first_line: int, work: Work) -> NoReturn:
    """The forked child: its span, its figures down the pipe, and out, whatever happens."""
    cpu_at_first_line = time.process_time_ns()
    faults_at_first_line = _faults()
    code = 1
    try:
        flushed_ok = work()
        flushed, cpu_flushed, faults_flushed = time.perf_counter_ns(), time.process_time_ns(), _faults()
        again = _hooks_again()
        record = (
            *_MARKS,
            first_line,
            cpu_at_first_line,
            faults_at_first_line,
            flushed,
            cpu_flushed,
            faults_flushed,
            again,
            int(flushed_ok),
        )
        os.write(write_end, _RECORD.pack(*record))
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def _receive(read_end: int, pid: int) -> bytes:
    """The child's record, or an error once it has exited without one or hangs."""
    data = b""
    while len(data) < _RECORD.size:
        ready, _, _ = select.select([read_end], [], [], CHILD_TIMEOUT)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise RuntimeError(f"a child sent nothing within {CHILD_TIMEOUT:g} s (killed): hung after fork")
        chunk = os.read(read_end, _RECORD.size - len(data))
        if not chunk:
            _, status = os.waitpid(pid, 0)
            raise RuntimeError(f"a child exited with status {os.waitstatus_to_exitcode(status)}, no figures")
        data += chunk
    return data


def _figures(before: int, returned: int, record: tuple[int, ...]) -> dict[str, int]:
    parent_before, handlers, hooks_end, first_line, cpu_first, faults_first = record[:6]
    flushed, cpu_flushed, faults_flushed, again, ok = record[6:]
    if not ok:
        raise RuntimeError("a child's force_flush() did not export its span in time")
    if first_line <= before:
        raise RuntimeError("perf_counter_ns() is not one clock across fork(): cannot time the at-fork path")
    return {
        "fork_to_child": first_line - before,
        "parent_before": parent_before - before,
        "handlers": first_line - handlers,
        "child_hooks": hooks_end - handlers,
        "child_hooks_again": again,
        "parent_fork_call": returned - before,
        "fork_to_exported": flushed - before,
        "child_wall": flushed - first_line,
        "child_cpu_at_fork": cpu_first,
        "child_cpu": cpu_flushed,
        "child_faults_at_fork": faults_first,
        "child_faults": faults_flushed,
    }


def fork_once(work: Work) -> tuple[int, dict[str, int]]:
    """Fork one child that runs ``work``; its pid and figures, once it has exited."""
    read_end, write_end = os.pipe()
    before = time.perf_counter_ns()
    pid = os.fork()
    if pid == 0:
        first_line = time.perf_counter_ns()
        _child(write_end, first_line, work)
    returned = time.perf_counter_ns()
    os.close(write_end)
    try:
        data = _receive(read_end, pid)
    finally:
        os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"a child exited with status {os.waitstatus_to_exitcode(status)}")
    return pid, _figures(before, returned, _RECORD.unpack(data))


def main(argv: list[str]) -> None:
    variant, url, forks = argv[0], argv[1], int(argv[2])
    # Python 3.12+ warns on fork() with threads running (tracekit's and the SDK's export threads).
    warnings.filterwarnings(
        "ignore", message=r".*fork\(\) may lead to deadlocks", category=DeprecationWarning
    )
    work = VARIANTS[variant](url)
    figures: dict[str, list[int]] = {name: [] for name in FIELDS}
    pids = []
    for _ in range(forks):
        time.sleep(PAUSE)
        pid, child = fork_once(work)
        pids.append(pid)
        for name in FIELDS:
            figures[name].append(child[name])
    print(json.dumps({"parent_pid": os.getpid(), "pids": pids, "figures": figures}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
