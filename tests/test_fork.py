"""A forked child: no hang, no inherited lock or thread, its own process.pid, instance id and exporter.

The scenarios that hang or lose spans run in a process of their own, bounded in time, so that a
regression fails the test instead of stopping the suite.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tracekit
from tracekit import _fork
from tracekit._settings import Settings
from tracekit.exporters._otlp import OTLPSpanExporter
from tracekit.testing import OTLPReceiver

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")


def in_child(check: str, timeout: float = 10.0) -> str:
    """Fork; the child evaluates ``check`` (an expression) and reports ``repr`` of it.

    A child that has not answered within ``timeout`` seconds is killed and fails the test.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.write(write, repr(eval(check)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        if not select.select([pipe], [], [], timeout)[0]:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"the child did not answer {check!r} within {timeout} s: it hangs")
        answer = pipe.read()
    os.waitpid(pid, 0)
    return answer


def run_python(code: str, *flags: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter; fail (never hang) if it outlives ``timeout``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    try:
        return subprocess.run(
            [sys.executable, *flags, "-c", textwrap.dedent(code)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the process did not finish within {timeout} s: {exc.stderr!r}") from None


#: Forks a child that makes a span and exits; reports the child's exit status, bounded.
FORK_AND_WAIT = """
    def fork_and_wait():
        pid = os.fork()
        if pid == 0:
            with tracekit.span("in the child"):
                pass
            os._exit(0)
        for _ in range(500):  # 5 s
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.01)
        os.kill(pid, 9)
        return "hung"
"""


@pytest.mark.parametrize(
    "pool",
    [
        "import concurrent.futures.thread",
        "from concurrent.futures import ThreadPoolExecutor; ThreadPoolExecutor(2).submit(int).result()",
    ],
    ids=["pool-module-imported", "pool-in-use"],
)
@pytest.mark.parametrize("resource", ["", "OTEL_RESOURCE_ATTRIBUTES=team=payments"])
def test_a_child_forked_after_a_thread_pool_was_imported_does_not_hang(pool: str, resource: str) -> None:
    # The SDK provider's own after-fork hook ran resource detection through a thread pool and
    # waited forever on concurrent.futures' lock, whose after-fork release runs after it.
    result = run_python(
        f"""
        import os, time
        {"os.environ['OTEL_RESOURCE_ATTRIBUTES'] = 'team=payments'" if resource else ""}
        import tracekit
        tracekit.configure(service_name="forking", exporters=[])
        {pool}
        {textwrap.indent(textwrap.dedent(FORK_AND_WAIT), " " * 8).strip()}
        print([fork_and_wait() for _ in range(3)])
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0, 0, 0]"


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_master_that_made_no_span_forks_with_one_thread(protocol: str) -> None:
    # Python 3.12+ warns on every fork of a multi-threaded process (DeprecationWarning, made an
    # error here); Linux counts the threads the warning counts in /proc/self/status (gRPC's
    # C threads included).
    result = run_python(
        f"""
        import os, threading, time
        import tracekit
        from concurrent.futures import ThreadPoolExecutor

        def os_threads():
            with open("/proc/self/status") as status:
                return next(int(line.split()[1]) for line in status if line.startswith("Threads:"))

        tracekit.configure(
            service_name="master", exporters=["otlp"], protocol="{protocol}", endpoint="http://127.0.0.1:9"
        )
        print(threading.active_count(), os_threads())
        pid = os.fork()
        if pid == 0:
            with tracekit.span("in the worker"):
                pass
            print("tracekit-export" in [thread.name for thread in threading.enumerate()], flush=True)
            tracekit.shutdown(timeout=0.1)
            os._exit(0)
        os.waitpid(pid, 0)
        print(threading.active_count(), os_threads())
        """,
        "-W",
        "error::DeprecationWarning",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["1 1", "True", "1 1"]
    assert "multi-threaded" not in result.stderr


def test_a_child_finds_fork_safe_locks_released() -> None:
    held = _fork.lock()
    reentrant = _fork.rlock()
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with held, reentrant:
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    globals()["_locks_under_test"] = (held, reentrant)
    try:
        answer = in_child("[lock.acquire(timeout=1) for lock in _locks_under_test]")
    finally:
        release.set()
        holder.join(10)
    assert answer == "[True, True]"


def test_child_hooks_run_once_per_process_and_drop_dead_owners() -> None:
    calls: list[str] = []

    class Owner:
        def __init__(self, name: str) -> None:
            self.name = name

    owner, gone = Owner("owner"), Owner("gone")
    _fork.in_child(owner, lambda it: calls.append(f"{it.name} at fork"))
    _fork.in_child(gone, lambda it: calls.append(f"{it.name} at fork"))
    _fork.before_first_span(owner, lambda it: calls.append(f"{it.name} at first span"))
    del gone
    globals()["_calls_under_test"] = calls
    # fork() ran the immediate hooks; a second run in the same child (uWSGI's hook after
    # Python's) does not; the deferred ones wait for the first span, once.
    assert in_child("(_fork.run_child_hooks(), list(_calls_under_test))[1]") == "['owner at fork']"
    assert (
        in_child("(_fork.first_span(), _fork.first_span(), _calls_under_test)[2]")
        == "['owner at fork', 'owner at first span']"
    )
    _fork.run_child_hooks()  # the parent is not a new process
    _fork.first_span()
    assert calls == []


class SlowTransport:
    """A transport whose making takes ``delay`` seconds, as the imports of a first export do."""

    endpoint = "http://127.0.0.1:4318/v1/traces"

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.done = threading.Event()

    def make(self) -> SlowTransport:
        time.sleep(self.delay)
        self.done.set()
        return self

    def send(self, body: bytes, timeout: float) -> Any:
        raise AssertionError("nothing is sent in this test")

    def close(self) -> None:
        pass


def test_fork_waits_for_the_first_export_and_the_child_builds_its_own() -> None:
    slow = SlowTransport(0.3)
    exporter = OTLPSpanExporter(Settings(), slow.endpoint, transport=slow.make)
    sender = threading.Thread(target=exporter.export, args=([],))
    sender.start()
    time.sleep(0.05)
    globals()["_exporter_under_test"] = exporter
    assert in_child("_exporter_under_test._transport is None") == "True"
    assert slow.done.is_set()  # fork() returned only after the first export
    sender.join(5)
    assert exporter._transport is slow
    started = time.monotonic()
    in_child("1")
    assert time.monotonic() - started < 0.25  # later exports do not hold forks back


def resource_after_a_span() -> dict[str, object]:
    """In a child: make a span, then read the resource (refreshed as the first span is queued)."""
    with tracekit.span("in the child"):
        pass
    tracing = _tracing_under_test  # type: ignore[name-defined]  # noqa: F821
    return dict(tracing.provider.resource.attributes)


def test_the_resource_follows_the_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=payments")
    tracing = tracekit.configure(service_name="forking", exporters=[InMemorySpanExporter()])
    globals()["_tracing_under_test"] = tracing
    with tracekit.span("before the fork"):  # the parent's export thread is running
        pass
    parent = dict(tracing.provider.resource.attributes)  # type: ignore[union-attr]
    # A child that makes no span pays nothing for it; its first span refreshes the resource.
    assert eval(in_child("dict(_tracing_under_test.provider.resource.attributes)")) == parent
    child = eval(in_child("resource_after_a_span()"))
    assert parent["process.pid"] == os.getpid()
    assert child["process.pid"] not in (os.getpid(), None)
    assert child["service.instance.id"] != parent["service.instance.id"]
    assert {k: v for k, v in child.items() if k not in ("process.pid", "service.instance.id")} == {
        k: v for k, v in parent.items() if k not in ("process.pid", "service.instance.id")
    }
    assert child["team"] == "payments"


def test_given_resource_values_are_kept_in_the_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=pod-7")
    tracing = tracekit.configure(exporters=[InMemorySpanExporter()])
    globals()["_tracing_under_test"] = tracing
    child = eval(in_child("resource_after_a_span()"))
    assert child["service.instance.id"] == "pod-7"
    assert child["process.pid"] != os.getpid()


def test_a_child_ends_whatever_the_parents_threads_held() -> None:
    tracing = tracekit.configure(service_name="forking", exporters=[InMemorySpanExporter()])
    with tracekit.span("before the fork"):  # the parent's export thread is running
        pass
    (processor,) = tracing.provider._active_span_processor._span_processors  # type: ignore[union-attr]
    held = [processor._queue_lock, processor._lock, processor._wake._condition, processor.dropped._lock]
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        for lock in held:
            lock.acquire()
        holding.set()
        release.wait(10)
        for lock in reversed(held):
            lock.release()

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    globals()["_tracing_under_test"] = tracing
    try:
        # A child that makes no span, and one that does, both flush and shut down.
        assert in_child("(_tracing_under_test.shutdown(timeout=1), 'ended')[1]") == "'ended'"
        assert in_child("(resource_after_a_span(), _tracing_under_test.force_flush(1))[1]") == "True"
    finally:
        release.set()
        holder.join(10)


def test_a_child_ends_whatever_the_export_threads_connection_pool_held() -> None:
    # A child forked while the parent's export thread held its connection pool's lock must
    # neither use nor close that pool (urllib3's, closed at exit under its lock, once hung
    # 1 fork in about 600): the child leaves the parent's transport alone.
    with OTLPReceiver() as receiver:
        result = run_python(
            f"""
            import os, sys, threading, time
            import tracekit

            tracing = tracekit.configure(service_name="forking", endpoint="{receiver.http_endpoint}")
            with tracekit.span("before the fork"):
                pass
            assert tracing.force_flush(10)
            (processor,) = tracing.provider._active_span_processor._span_processors
            lock = processor.exporter._transport._pool._pool._optional_thread_lock
            holding = threading.Event()
            threading.Thread(target=lambda: (lock.acquire(), holding.set()), daemon=True).start()
            holding.wait(10)
            pid = os.fork()
            if pid == 0:
                with tracekit.span("in the child"):
                    pass
                tracing.shutdown(5)
                sys.exit(0)
            for _ in range(500):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    print(os.waitstatus_to_exitcode(status))
                    break
                time.sleep(0.01)
            else:
                os.kill(pid, 9)
                print("hung")
            os._exit(0)
            """
        )
        assert sorted(span.name for span in receiver.wait_for_spans(2)) == ["before the fork", "in the child"]
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"
