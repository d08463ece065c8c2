"""SIGTERM and SIGINT: what a process queued arrives, and it ends exactly as it would have.

Real processes get real signals: plain scripts (``configure()`` in code and under
``tracekit run``), an asyncio service with its own handler, ``multiprocessing`` children
stopped with ``terminate()``, and servers (uvicorn alone and with ``--workers``, hypercorn,
the Flask development server). Each test counts the spans that reached a real OTLP receiver
and compares the exit status with the status the same program has without tracekit.
Every wait is bounded; every process runs in a process group of its own, stopped at the end.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launcher_support import (
    environment,
    free_port,
    get,
    script,
    started,
    tracekit_command,
    wait_for_line,
    write,
)
from tracekit.testing import OTLPReceiver

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and process groups")

#: Nothing leaves a process before the signal: what arrives was flushed because of it.
HELD = "60000"
BOUND = 20.0


def signal_and_wait(process: subprocess.Popen[str], number: int) -> tuple[int, float, str]:
    """Send ``number``; return the exit status, the seconds it took to end, and stderr."""
    started = time.monotonic()
    process.send_signal(number)
    status = process.wait(BOUND)
    elapsed = time.monotonic() - started
    stderr = process.stderr.read() if process.stderr is not None else ""
    return status, elapsed, stderr


def names(receiver: OTLPReceiver, count: int) -> list[str]:
    return sorted(span.name for span in receiver.wait_for_spans(count, timeout=5.0))


# ---------------------------------------------------------------------------- scripts

SCRIPT = """
    import asyncio, os, signal, sys, time
    {before}
    import tracekit
    {configure}
    {after}
    for number in range(5):
        with tracekit.span(f"job-{{number}}"):
            pass
    time.sleep(float(os.environ.get("SETTLE", "0")))
    print("ready", flush=True)
    time.sleep(60)
"""


def script_file(directory: Path, *, configure: bool, before: str = "", after: str = "") -> Path:
    text = SCRIPT.format(before=before, configure="tracekit.configure()" if configure else "", after=after)
    return write(directory, "worker.py", text)


JOBS = [f"job-{number}" for number in range(5)]


@pytest.mark.parametrize("launcher", ["configure", "tracekit-run"])
def test_sigterm_flushes_a_script_and_ends_it_as_the_signal_would(
    receiver: OTLPReceiver, tmp_path: Path, launcher: str
) -> None:
    path = script_file(tmp_path, configure=launcher == "configure")
    command = [sys.executable, str(path)]
    if launcher == "tracekit-run":
        command = [*tracekit_command(), "run", *command]
    with started(
        command, environment(receiver, OTEL_BSP_SCHEDULE_DELAY=HELD), tmp_path, stdout=True
    ) as process:
        wait_for_line(process, "ready")
        status, _, stderr = signal_and_wait(process, signal.SIGTERM)
    assert status == -signal.SIGTERM, stderr  # killed by SIGTERM, as without tracekit
    assert names(receiver, 5) == JOBS
    assert stderr == ""


def test_without_tracekit_the_same_script_ends_the_same_way(tmp_path: Path) -> None:
    path = write(tmp_path, "plain.py", 'import time\nprint("ready", flush=True)\ntime.sleep(60)\n')
    with started([sys.executable, str(path)], environment(), tmp_path, stdout=True) as process:
        wait_for_line(process, "ready")
        status, _, _ = signal_and_wait(process, signal.SIGTERM)
    assert status == -signal.SIGTERM


def test_sigterm_without_a_collector_ends_promptly_with_one_warning(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there: connections are refused
    endpoint = f"http://127.0.0.1:{port}"
    path = script_file(tmp_path, configure=True)
    env = environment(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_BSP_SCHEDULE_DELAY=HELD)
    with started([sys.executable, str(path)], env, tmp_path, stdout=True) as process:
        wait_for_line(process, "ready")
        status, elapsed, stderr = signal_and_wait(process, signal.SIGTERM)
    assert status == -signal.SIGTERM
    assert stderr.splitlines() == [
        f"tracekit: 5 spans could not be delivered to {endpoint}/v1/traces: connection refused; is the "
        "collector running there? To see spans locally instead, set OTEL_TRACES_EXPORTER=console"
    ]
    assert elapsed < 5.0  # a hang guard only; benchmarks/ measures how prompt it is


@pytest.mark.parametrize("configure", [True, False], ids=["traced", "untraced"])
def test_sigint_with_pythons_handler_keeps_its_keyboard_interrupt(
    receiver: OTLPReceiver, tmp_path: Path, configure: bool
) -> None:
    path = script_file(tmp_path, configure=configure)
    # SETTLE: the export thread's start-up (its imports, with the first span) is over. CPython
    # remembers that a KeyboardInterrupt is ending the process in one flag, which any
    # exec() of source text, in any thread, clears (a dataclass being defined does it): an
    # interrupt that lands while the export thread is importing still exits with status 1.
    env = environment(receiver, OTEL_BSP_SCHEDULE_DELAY=HELD, SETTLE="1")
    with started([sys.executable, str(path)], env, tmp_path, stdout=True) as process:
        wait_for_line(process, "ready")
        status, _, stderr = signal_and_wait(process, signal.SIGINT)
    # An uncaught KeyboardInterrupt: the traceback, then the interpreter ends by SIGINT.
    assert status == -signal.SIGINT, stderr
    assert stderr.rstrip().endswith("KeyboardInterrupt")
    if configure:
        assert names(receiver, 5) == JOBS  # flushed at exit, as the exception unwound


def test_sigint_left_at_the_os_default_is_flushed_too(receiver: OTLPReceiver, tmp_path: Path) -> None:
    path = script_file(tmp_path, configure=True, before="signal.signal(signal.SIGINT, signal.SIG_DFL)")
    env = environment(receiver, OTEL_BSP_SCHEDULE_DELAY=HELD)
    with started([sys.executable, str(path)], env, tmp_path, stdout=True) as process:
        wait_for_line(process, "ready")
        status, _, stderr = signal_and_wait(process, signal.SIGINT)
    assert status == -signal.SIGINT, stderr
    assert names(receiver, 5) == JOBS


def test_a_handler_the_application_installs_later_wins(receiver: OTLPReceiver, tmp_path: Path) -> None:
    after = "signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))"
    path = script_file(tmp_path, configure=True, after=after)
    env = environment(receiver, OTEL_BSP_SCHEDULE_DELAY=HELD)
    with started([sys.executable, str(path)], env, tmp_path, stdout=True) as process:
        wait_for_line(process, "ready")
        status, _, stderr = signal_and_wait(process, signal.SIGTERM)
    assert status == 3, stderr  # the application's own ending; spans flushed at exit
    assert names(receiver, 5) == JOBS


def test_an_asyncio_service_with_its_own_signal_handler(receiver: OTLPReceiver, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "service.py",
        """
        import asyncio, signal
        import tracekit

        tracekit.configure()

        async def main():
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            for number in range(5):
                with tracekit.span(f"job-{number}"):
                    await asyncio.sleep(0)
            print("ready", flush=True)
            await stop.wait()
            with tracekit.span("stopping"):
                pass

        asyncio.run(main())
        """,
    )
    env = environment(receiver, OTEL_BSP_SCHEDULE_DELAY=HELD)
    with started([sys.executable, str(path)], env, tmp_path, stdout=True) as process:
        wait_for_line(process, "ready")
        status, _, stderr = signal_and_wait(process, signal.SIGTERM)
    assert status == 0, stderr
    assert names(receiver, 6) == [*JOBS, "stopping"]


def test_multiprocessing_children_stopped_with_terminate(receiver: OTLPReceiver, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "pool.py",
        """
        import multiprocessing, os, time
        import tracekit

        tracekit.configure()

        def work(number):
            with tracekit.span(f"task-{number}"):
                pass
            return os.getpid()

        if __name__ == "__main__":
            multiprocessing.set_start_method("fork")
            pool = multiprocessing.Pool(2)
            pids = set(pool.map(work, range(6), chunksize=1))
            pool.terminate()  # SIGTERM to each child, whose spans are still queued
            pool.join()
            print(len(pids), flush=True)
        """,
    )
    env = environment(receiver, OTEL_BSP_SCHEDULE_DELAY=HELD)
    # A child's exit flush (the pool sends sentinels first) is often still running when
    # terminate()'s SIGTERM lands in it: the handler must neither cut it nor deadlock with it.
    with started([sys.executable, str(path)], env, tmp_path, stdout=True) as process:
        status = process.wait(BOUND)
        stderr = process.stderr.read() if process.stderr is not None else ""
    assert status == 0, stderr
    assert names(receiver, 6) == [f"task-{number}" for number in range(6)]


# ---------------------------------------------------------------------------- servers

APP = """
    import os
    import tracekit
    {configure}

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({{"type": "lifespan.startup.complete"}})
                elif message["type"] == "lifespan.shutdown":
                    await send({{"type": "lifespan.shutdown.complete"}})
                    return
        with tracekit.span("handle", path=scope["path"]):
            body = str(os.getpid()).encode()
        await send({{"type": "http.response.start", "status": 200, "headers": []}})
        await send({{"type": "http.response.body", "body": body}})

    try:
        from flask import Flask
    except ImportError:
        pass
    else:
        flask_app = Flask(__name__)

        @flask_app.get("/<path:path>")
        def handle(path):
            with tracekit.span("handle", path=path):
                return str(os.getpid())

        if __name__ == "__main__":
            print("ready", flush=True)
            flask_app.run(host="127.0.0.1", port=int(os.environ["PORT"]))
"""


def serve_requests(port: int, process: subprocess.Popen[str], count: int) -> set[str]:
    """Ask ``count`` fresh paths once the server answers; the pids that answered."""
    deadline = time.monotonic() + BOUND
    answered: set[str] = set()
    number = 0
    while number < count:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"only {number} of {count} requests answered within {BOUND} s")
        try:
            status, body = get(f"http://127.0.0.1:{port}/request-{number}", timeout=5.0)
        except OSError:
            time.sleep(0.1)
            continue
        assert status == 200
        answered.add(body)
        number += 1
    return answered


SERVERS = {
    "uvicorn": lambda port: [script("uvicorn"), "served:app", "--host", "127.0.0.1", "--port", str(port)],
    "uvicorn-workers": lambda port: [
        script("uvicorn"),
        "served:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
    ],
    "hypercorn": lambda port: [script("hypercorn"), "served:app", "--bind", f"127.0.0.1:{port}"],
    "flask": lambda port: [sys.executable, "served.py"],
}

#: How each server ends on SIGTERM, with or without tracekit.
EXIT_STATUS = {"uvicorn": -signal.SIGTERM, "uvicorn-workers": 0, "hypercorn": 0, "flask": -signal.SIGTERM}


@pytest.mark.parametrize(
    ("server", "launcher"),
    [
        ("uvicorn", "tracekit-run"),
        ("uvicorn", "configure"),
        ("uvicorn-workers", "configure"),
        ("hypercorn", "configure"),
        ("flask", "configure"),
    ],
)
@pytest.mark.parametrize("traced", [True, False], ids=["traced", "untraced"])
def test_servers_flush_on_sigterm_and_end_as_they_would(
    receiver: OTLPReceiver, tmp_path: Path, server: str, launcher: str, traced: bool
) -> None:
    configure = "tracekit.configure()" if traced and launcher == "configure" else ""
    write(tmp_path, "served.py", APP.format(configure=configure))
    port = free_port()
    command = SERVERS[server](port)
    if traced and launcher == "tracekit-run":
        command = [*tracekit_command(), "run", *command]
    env = environment(receiver, OTEL_BSP_SCHEDULE_DELAY=HELD, PORT=str(port))
    requests = 6
    with started(command, env, tmp_path, stdout=True) as process:
        serve_requests(port, process, requests)
        time.sleep(0.2)
        assert receiver.spans == []  # still queued in the server's processes
        status, _, stderr = signal_and_wait(process, signal.SIGTERM)
    assert status == EXIT_STATUS[server], stderr
    if traced:
        spans = receiver.wait_for_spans(requests, timeout=5.0)
        handled = sorted(span.attributes["path"] for span in spans if span.name == "handle")
        expected = sorted(f"/request-{n}" if server != "flask" else f"request-{n}" for n in range(requests))
        assert handled == expected
    else:
        time.sleep(0.5)
        assert receiver.spans == []
