"""Worker processes export their own spans: real processes, a real OTLP/HTTP receiver.

Each scenario is a small script run in an interpreter of its own, bounded in time (its whole
process group is killed if it outlives the bound), exporting to an :class:`OTLPReceiver`
in this process. The checks are on what arrives: exact span names and counts, and the
``process.pid`` and ``service.instance.id`` of each span's resource, against the pids the
processes reported themselves.

Where the point is that spans leave as a process exits, the batch processor's timer is set
far beyond the test's duration (``OTEL_BSP_SCHEDULE_DELAY=60000``): a span that arrives was
exported by the exit flush.

* multiprocessing (``fork``, ``forkserver``, ``spawn``): a ``Process``, a ``Pool`` and a
  ``ProcessPoolExecutor``, configured in the script and under ``tracekit run``. Children
  of ``fork`` and ``forkserver`` end with ``os._exit()``, which skips ``atexit``: their
  spans leave through tracekit's multiprocessing finalizer (``spawn`` children end with
  ``sys.exit()``, and ``atexit`` flushes).
* ``os.fork()`` from a thread other than the main one, while other threads make spans.
* 40 forks in a row while 6 threads make spans and the exporter is in the middle of
  requests to a slow receiver.
* A child never exports the spans its parent had queued when it forked.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from launcher_support import environment, run, tracekit_command
from tracekit._receiver import ReceivedSpan
from tracekit.testing import OTLPReceiver

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()"),
    pytest.mark.timeout(180),
]

#: Far beyond any test here: a span that arrives was sent by a flush, not by the timer.
NEVER = "60000"
BOUND = 60.0


@pytest.fixture
def service() -> str:
    """A service name of this test's own: only its spans are looked at."""
    return f"workers-{uuid.uuid4().hex[:12]}"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def spans_of(receiver: OTLPReceiver, service: str, count: int, timeout: float = 5.0) -> list[ReceivedSpan]:
    """The spans of ``service``, once at least ``count`` of them have arrived (bounded wait).

    Called once the script has exited: every export has been answered by then, so this
    normally returns at once; the caller asserts the exact names and counts.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = [span for span in receiver.spans if span.resource.get("service.name") == service]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def names(spans: list[ReceivedSpan]) -> dict[str, int]:
    return dict(collections.Counter(span.name for span in spans))


def report(stdout: str) -> Any:
    """The JSON line a script printed last."""
    lines = stdout.strip().splitlines()
    assert lines, "the script printed nothing"
    return json.loads(lines[-1])


def check_one_instance_per_process(spans: list[ReceivedSpan]) -> dict[int, str]:
    """Each process has one ``service.instance.id``, none shared with another process."""
    ids: dict[int, set[str]] = collections.defaultdict(set)
    for span in spans:
        ids[span.resource["process.pid"]].add(span.resource["service.instance.id"])
    assert all(len(found) == 1 for found in ids.values()), dict(ids)
    by_pid = {pid: next(iter(found)) for pid, found in ids.items()}
    assert len(set(by_pid.values())) == len(by_pid), by_pid
    return by_pid


# ---------------------------------------------------------------------------- multiprocessing

MULTIPROCESSING_APP = """
    import concurrent.futures
    import json
    import multiprocessing
    import os
    import sys

    import tracekit

    # CONFIGURE


    def work(kind, n):
        with tracekit.span(kind + " work", n=n):
            return n, os.getpid()


    def process_target(n, queue):
        queue.put(work("process", n))


    def pool_work(n):
        return work("pool", n)


    def executor_work(n):
        return work("executor", n)


    if __name__ == "__main__":
        context = multiprocessing.get_context(sys.argv[1])
        with tracekit.span("parent work"):
            queue = context.Queue()
            child = context.Process(target=process_target, args=(0, queue))
            child.start()
            process = [queue.get(timeout=30)]
            child.join(30)
            # close() and join(): the workers return and exit. (Leaving a `with Pool()` block
            # terminates them with SIGTERM instead, and what they had queued is lost.)
            pool = context.Pool(2)
            pooled = pool.map(pool_work, range(6))
            pool.close()
            pool.join()
            with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as executor:
                executed = list(executor.map(executor_work, range(6)))
        print(json.dumps({
            "parent": os.getpid(),
            "exitcode": child.exitcode,
            "process": process,
            "pool": pooled,
            "executor": executed,
        }))
"""

#: Module level, guarded: a spawn child and the forkserver import the script again, as
#: ``__mp_main__``, and configure there (a ``__main__``-only guard leaves them unconfigured).
CONFIGURE_IN_CODE = """
    if __name__ in ("__main__", "__mp_main__"):
        tracekit.configure()
"""


@pytest.mark.parametrize("how", ["configure", "tracekit-run"])
@pytest.mark.parametrize("start_method", ["fork", "forkserver", "spawn"])
def test_multiprocessing_children_flush_their_spans_as_they_exit(
    receiver: OTLPReceiver, service: str, tmp_path: Path, start_method: str, how: str
) -> None:
    # fork and forkserver children end with os._exit() (the finalizer flushes); spawn children
    # with sys.exit() (atexit flushes). Configured in code, a spawn child imports the script
    # again and configures itself; so does a forkserver child where the forkserver did not
    # preload __main__ (CPython 3.11's does not), else it inherits the forkserver's
    # configuration. Under `tracekit run` the forkserver is configured and its children inherit
    # that: either way each must export with its own pid and instance id.
    configure = CONFIGURE_IN_CODE.strip("\n") if how == "configure" else ""
    app = write(tmp_path, "app.py", MULTIPROCESSING_APP.replace("    # CONFIGURE", configure))
    env = environment(receiver, OTEL_SERVICE_NAME=service, OTEL_BSP_SCHEDULE_DELAY=NEVER)
    command = [sys.executable, str(app), start_method]
    if how == "tracekit-run":
        command = [*tracekit_command(), "run", *command]
    done = run(command, env, cwd=tmp_path, timeout=BOUND)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    reported = report(done.stdout)
    assert reported["exitcode"] == 0
    parent = reported["parent"]

    spans = spans_of(receiver, service, 14)
    assert names(spans) == {"parent work": 1, "process work": 1, "pool work": 6, "executor work": 6}
    [parent_span] = [span for span in spans if span.name == "parent work"]
    assert parent_span.resource["process.pid"] == parent
    children: set[int] = set()
    for kind, expected in (("process", [0]), ("pool", range(6)), ("executor", range(6))):
        pids = dict(reported[kind])
        assert sorted(pids) == list(expected)
        found = [span for span in spans if span.name == f"{kind} work"]
        assert sorted(span.attributes["n"] for span in found) == list(expected)
        for span in found:  # exported by the process that did the work
            assert span.resource["process.pid"] == pids[span.attributes["n"]], (kind, span.attributes)
        children |= set(pids.values())
    assert parent not in children
    # The Process, at least one pool worker and one executor worker.
    assert len(children) >= 3
    instances = check_one_instance_per_process(spans)
    assert set(instances) == {parent, *children}


# ---------------------------------------------------------------------------- os.fork() in a thread

#: Waits for a forked child, bounded: its exit code, or "hung" once it has been killed.
WAIT_BOUNDED = """
    def wait_bounded(pid, deadline):
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.005)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return "hung"
"""

FORK_IN_A_THREAD = (
    """
    import json, os, signal, threading, time
    import tracekit

    tracekit.configure()
    """
    + WAIT_BOUNDED
    + """
    stop = threading.Event()
    made = {}
    result = {}


    def busy(name):
        count = 0
        while not stop.is_set():
            with tracekit.span("busy", thread=name) as span:
                span.add_event("tick", {"count": count})
            count += 1
            time.sleep(0.0005)
        made[name] = count


    def forker():
        time.sleep(0.2)  # the other threads are making spans, the export thread is running
        pid = os.fork()
        if pid == 0:
            try:
                with tracekit.span("child work", thread=threading.current_thread().name):
                    pass
                tracekit.shutdown()
            finally:
                os._exit(0)
        result["child"] = pid
        result["exitcode"] = wait_bounded(pid, time.monotonic() + 10)


    threads = [threading.Thread(target=busy, args=(f"busy-{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    forking = threading.Thread(target=forker, name="forker")
    forking.start()
    count = 0
    while forking.is_alive():
        with tracekit.span("busy", thread="main"):
            pass
        count += 1
        time.sleep(0.0005)
    made["main"] = count
    stop.set()
    for thread in threads:
        thread.join(10)
    print(json.dumps({"parent": os.getpid(), "made": made, **result}))
    """
)


def test_a_child_forked_from_another_thread_exports_its_own_span(
    receiver: OTLPReceiver, service: str, tmp_path: Path
) -> None:
    app = write(tmp_path, "app.py", FORK_IN_A_THREAD)
    env = environment(
        receiver,
        OTEL_SERVICE_NAME=service,
        OTEL_BSP_SCHEDULE_DELAY="50",  # the parent's export thread is busy while it forks
        OTEL_BSP_MAX_QUEUE_SIZE="100000",  # and drops nothing: every span is counted
    )
    # -W: Python 3.12+ warns about fork() in a multi-threaded process, which is the point here.
    done = run([sys.executable, "-W", "ignore::DeprecationWarning", str(app)], env, timeout=BOUND)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    reported = report(done.stdout)
    assert reported["exitcode"] == 0, "the child did not exit by itself within 10 s"
    parent, child = reported["parent"], reported["child"]
    made = sum(reported["made"].values())
    assert all(count > 0 for count in reported["made"].values()), reported["made"]

    spans = spans_of(receiver, service, made + 1)
    assert names(spans) == {"busy": made, "child work": 1}
    assert len({span.span_id for span in spans}) == made + 1
    [child_span] = [span for span in spans if span.name == "child work"]
    assert child_span.resource["process.pid"] == child != parent
    assert child_span.attributes["thread"] == "forker"
    assert {span.resource["process.pid"] for span in spans if span.name == "busy"} == {parent}
    assert set(check_one_instance_per_process(spans)) == {parent, child}


# ---------------------------------------------------------------------------- forks under load

FORK_STRESS = (
    """
    import json, os, signal, sys, threading, time
    import tracekit

    tracekit.configure()
    """
    + WAIT_BOUNDED
    + """
    stop = threading.Event()
    made = {}


    def busy(name):
        count = 0
        while not stop.is_set():
            with tracekit.span("busy", thread=name, count=count) as span:
                span.add_event("tick", {"count": count})
            count += 1
            time.sleep(0.0002)
        made[name] = count


    threads = [threading.Thread(target=busy, args=(f"busy-{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    children = []
    for number in range(40):
        pid = os.fork()
        if pid == 0:
            with tracekit.span("child work", number=number):
                pass
            tracekit.shutdown()
            sys.exit(0)
        children.append((number, pid, time.monotonic() + 10))
        time.sleep(0.005)
    exits = [[number, pid, wait_bounded(pid, deadline)] for number, pid, deadline in children]
    stop.set()
    for thread in threads:
        thread.join(10)
    print(json.dumps({"parent": os.getpid(), "made": made, "children": exits}))
    """
)

QUEUE_FULL = "tracekit: the export queue is full (OTEL_BSP_MAX_QUEUE_SIZE=256); "


@pytest.fixture
def slow_receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OTLPReceiver]:
    """A receiver that takes 20 ms over each export request: the exporter is mostly mid-request."""
    with OTLPReceiver() as receiver:
        record: Callable[..., None] = receiver._record

        def slowly(**request: Any) -> None:
            time.sleep(0.02)
            record(**request)

        monkeypatch.setattr(receiver, "_record", slowly)
        yield receiver


def test_forty_forks_while_threads_make_spans_and_the_exporter_is_mid_request(
    slow_receiver: OTLPReceiver, service: str, tmp_path: Path
) -> None:
    app = write(tmp_path, "app.py", FORK_STRESS)
    env = environment(
        slow_receiver,
        OTEL_SERVICE_NAME=service,
        OTEL_BSP_SCHEDULE_DELAY="1",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE="16",
        OTEL_BSP_MAX_QUEUE_SIZE="256",  # the parent drops spans (faster than 16 per 20 ms)
    )
    done = run([sys.executable, "-W", "ignore::DeprecationWarning", str(app)], env, timeout=BOUND)
    assert done.returncode == 0, done.stderr
    # The parent's queue overflows on purpose; nothing else may be reported.
    assert all(line.startswith(QUEUE_FULL) for line in done.stderr.splitlines()), done.stderr
    reported = report(done.stdout)
    parent = reported["parent"]
    hung = [number for number, _, exitcode in reported["children"] if exitcode == "hung"]
    assert not hung, f"children {hung} did not exit within 10 s"
    assert [exitcode for _, _, exitcode in reported["children"]] == [0] * 40
    pids = {number: pid for number, pid, _ in reported["children"]}
    assert sorted(pids) == list(range(40))
    assert parent not in pids.values()
    assert len(set(pids.values())) == 40

    spans = spans_of(slow_receiver, service, 40)
    children = [span for span in spans if span.name == "child work"]
    busy = [span for span in spans if span.name == "busy"]
    assert len(children) == 40, names(spans)
    assert len(children) + len(busy) == len(spans), names(spans)
    assert sorted(span.attributes["number"] for span in children) == list(range(40))
    for span in children:
        assert span.resource["process.pid"] == pids[span.attributes["number"]], span.attributes
    # No child sent a span of its parent's (each parent span once, with the parent's pid).
    assert busy, "the parent's spans did not arrive"
    assert {span.resource["process.pid"] for span in busy} == {parent}
    assert len({span.span_id for span in busy}) == len(busy)
    assert set(check_one_instance_per_process(spans)) == {parent, *pids.values()}
    for span in busy:
        assert [event.name for event in span.events] == ["tick"]
        assert span.attributes["count"] == span.events[0].attributes["count"]
    # The premise: the parent's exporter was sending requests all through the forks.
    parent_requests = [
        request
        for request in slow_receiver.requests
        if request.spans and request.spans[0].resource["process.pid"] == parent
    ]
    assert len(parent_requests) >= 20, len(parent_requests)


# ---------------------------------------------------------------------------- the parent's queue

QUEUED_THEN_FORK = (
    """
    import json, multiprocessing, os, signal, sys, time
    import tracekit

    tracekit.configure()
    """
    + WAIT_BOUNDED
    + """

    def child_work():
        with tracekit.span("child work"):
            pass


    if __name__ == "__main__":
        queued = []
        for number in range(50):
            with tracekit.span("queued", number=number) as span:
                queued.append(format(span.get_span_context().span_id, "016x"))
        if sys.argv[1] == "os.fork":
            pid = os.fork()
            if pid == 0:
                child_work()
                sys.exit(0)  # atexit flushes the child's queue
            exitcode = wait_bounded(pid, time.monotonic() + 10)
        else:  # exits with os._exit(): the multiprocessing finalizer flushes
            child = multiprocessing.get_context("fork").Process(target=child_work)
            child.start()
            child.join(10)
            pid, exitcode = child.pid, child.exitcode
            if exitcode is None:
                child.kill()
                child.join(5)
                exitcode = "hung"
        print(json.dumps({"parent": os.getpid(), "child": pid, "exitcode": exitcode, "queued": queued}))
    """
)


@pytest.mark.parametrize("fork", ["os.fork", "multiprocessing"])
def test_spans_the_parent_queued_before_a_fork_are_exported_once_by_the_parent(
    receiver: OTLPReceiver, service: str, tmp_path: Path, fork: str
) -> None:
    app = write(tmp_path, "app.py", QUEUED_THEN_FORK)
    env = environment(receiver, OTEL_SERVICE_NAME=service, OTEL_BSP_SCHEDULE_DELAY=NEVER)
    done = run([sys.executable, str(app), fork], env, timeout=BOUND)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    reported = report(done.stdout)
    assert reported["exitcode"] == 0
    parent, child = reported["parent"], reported["child"]
    assert child != parent
    assert len(set(reported["queued"])) == 50

    spans = spans_of(receiver, service, 51)
    assert names(spans) == {"queued": 50, "child work": 1}
    queued = [span for span in spans if span.name == "queued"]
    assert sorted(span.span_id for span in queued) == sorted(reported["queued"])
    assert {span.resource["process.pid"] for span in queued} == {parent}
    [child_span] = [span for span in spans if span.name == "child work"]
    assert child_span.resource["process.pid"] == child
    assert set(check_one_instance_per_process(spans)) == {parent, child}
    # Two exports: the child's as it exited, then the parent's (at its exit: the timer never ran).
    requests = [
        r for r in receiver.requests if r.spans and r.spans[0].resource.get("service.name") == service
    ]
    assert [names(list(request.spans)) for request in requests] == [{"child work": 1}, {"queued": 50}]
