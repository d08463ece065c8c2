"""Pre-fork servers: every worker exports its own spans, under its own ``process.pid``.

gunicorn (sync, gthread, gevent and uvicorn workers, with and without ``--preload``), uWSGI
(the pyuwsgi wheel: with and without its master, ``--lazy-apps``, ``--enable-threads``,
``--max-requests``, ``uwsgidecorators.postfork``) and Celery's prefork pool run as real
processes, traced by ``tracekit run`` or by ``tracekit.configure()`` in the application
module, exporting to a real OTLP receiver. Each request (or task) makes one span in the
worker that serves it and answers that worker's pid, so the test knows which process each
span must come from; the spans are counted exactly, by name, and the master's pid never
appears on a request's span.

Every server binds 127.0.0.1 and runs in a process group of its own, stopped at the end;
every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from opentelemetry.trace import SpanKind

from launcher_support import environment, free_port, get, script, started, tracekit_command, write
from tracekit._receiver import ReceivedSpan
from tracekit.testing import OTLPReceiver

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fork, exec and process groups are POSIX")

TRACEKIT = tracekit_command()
#: Long enough that nothing leaves a process before it exits: what arrives was flushed at exit.
HELD = "60000"
#: The receiver records spans before it answers, so once a process has exited what it
#: exported is there: a short wait, for the slower receiving thread.
AFTER_EXIT = 1.0

#: An answered request: the path asked for -> the body, ``{"pid": ..., "postfork": ...}``.
Answers = dict[str, dict[str, Any]]


# ---------------------------------------------------------------------------- the application

#: One module for every server: a WSGI ``application``, an ASGI ``app``; ``{setup}`` is
#: where ``tracekit.configure()`` and ``uwsgidecorators`` go when a test wants them.
APP = """
    import json
    import os
    from concurrent.futures import ThreadPoolExecutor  # hung every --preload worker once

    import tracekit
    {setup}

    POSTFORK = None

    with tracekit.span("loaded"):  # where the module is imported: the master, unless lazy
        pass


    def answer():
        return json.dumps({{"pid": os.getpid(), "postfork": POSTFORK}}).encode()


    def application(environ, start_response):
        with tracekit.span("handle", path=environ["PATH_INFO"]):
            body = answer()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


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
            body = answer()
        headers = [(b"content-type", b"application/json")]
        await send({{"type": "http.response.start", "status": 200, "headers": headers}})
        await send({{"type": "http.response.body", "body": body}})
"""

CONFIGURE = "tracekit.configure()"

#: The application's own post-fork function: a span, and a mark every request reports.
POSTFORK = """
    import uwsgidecorators

    @uwsgidecorators.postfork
    def after_fork():
        global POSTFORK
        with tracekit.span("postfork"):
            POSTFORK = os.getpid()
"""


def configured(launched: bool) -> tuple[str, ...]:
    """The application's setup: nothing under ``tracekit run``, ``tracekit.configure()`` without it."""
    return () if launched else (CONFIGURE,)


def write_app(directory: Path, *setup: str) -> None:
    lines = "\n".join(textwrap.dedent(part).strip() for part in setup)
    write(directory, "served.py", APP.format(setup=textwrap.indent(lines, " " * 4).strip()))


# ---------------------------------------------------------------------------- requests and spans


def ask(url: str) -> dict[str, Any] | None:
    """One GET: the answer, or ``None`` if no application code ran (refused, reset, 5xx of a router).

    A request that times out fails the test: a worker that accepted it hung.
    """
    try:
        status, body = get(url, timeout=10.0)
    except urllib.error.HTTPError:
        return None
    except TimeoutError as exc:
        raise AssertionError(f"{url} got no answer within 10 s: a worker hangs") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise AssertionError(f"{url} got no answer within 10 s: a worker hangs") from exc
        return None
    except OSError:
        return None
    assert status == 200
    answer: dict[str, Any] = json.loads(body)
    return answer


def serve(
    base: str, server: subprocess.Popen[str], *, workers: int = 2, requests: int = 0, timeout: float = 30.0
) -> Answers:
    """Ask fresh paths until ``workers`` different pids answered and ``requests`` were answered.

    Every path is asked once, on a new connection, so each answered path has exactly one
    ``handle`` span and the unanswered ones (the server was not listening yet) have none.
    """
    answers: Answers = {}
    deadline = time.monotonic() + timeout
    number = 0
    while len({a["pid"] for a in answers.values()}) < workers or len(answers) < requests:
        if server.poll() is not None:
            stderr = server.stderr.read() if server.stderr else ""
            raise AssertionError(f"the server exited with {server.returncode}: {stderr[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{timeout} s, {number} requests, and only these answered: {answers}")
        number += 1
        path = f"/request-{number}"
        answer = ask(base + path)
        if answer is None:
            time.sleep(0.1)
        else:
            answers[path] = answer
            time.sleep(0.01)
    return answers


def pids(answers: Answers) -> set[int]:
    return {answer["pid"] for answer in answers.values()}


def summary(spans: list[ReceivedSpan]) -> list[tuple[str, Any, Any]]:
    return [(s.name, s.resource.get("process.pid"), s.attributes.get("path")) for s in spans]


def wait_for_names(
    receiver: OTLPReceiver, expected: Mapping[str, int], timeout: float = 20.0, ignore: str = ""
) -> list[ReceivedSpan]:
    """Wait for ``expected`` (name -> count), then a little longer: exactly those arrived.

    Spans named ``ignore`` are not counted (but returned).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        arrived = Counter(span.name for span in receiver.spans)
        if all(arrived[name] >= count for name, count in expected.items()):
            break
        time.sleep(0.05)
    time.sleep(0.5)  # five schedule delays: whatever else was queued has come too
    spans = receiver.spans
    counted = Counter(span.name for span in spans if span.name != ignore)
    assert counted == Counter(expected), summary(spans)
    return spans


def check_workers(spans: list[ReceivedSpan], answers: Answers, master: int | None) -> None:
    """Each request's span came from the worker that answered it, and only from it.

    ``master``: the pid that must be on no request's span (``None``: uWSGI without its
    master, whose first process is worker 1).
    """
    handled = [span for span in spans if span.name == "handle"]
    assert len(handled) == len(answers), summary(spans)
    assert {s.attributes["path"]: s.resource["process.pid"] for s in handled} == {
        path: answer["pid"] for path, answer in answers.items()
    }
    assert len(pids(answers)) == 2
    if master is not None:
        assert master not in pids(answers)
    assert {span.resource["service.name"] for span in spans} == {"launched"}
    # One instance id per process, each process its own.
    instances: dict[int, set[str]] = {}
    for span in spans:
        instances.setdefault(span.resource["process.pid"], set()).add(span.resource["service.instance.id"])
    assert all(len(ids) == 1 for ids in instances.values()), instances
    assert len({next(iter(ids)) for ids in instances.values()}) == len(instances), instances


def loaded_by(spans: list[ReceivedSpan]) -> list[int]:
    return sorted(span.resource["process.pid"] for span in spans if span.name == "loaded")


def left_in_group(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid``."""
    proc = Path("/proc")
    if not proc.is_dir():  # no /proc: any member, zombies included
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [pgid]
    left = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()  # state, ppid, pgrp, ...
            if int(fields[2]) == pgid and fields[0] != "Z":
                left.append(int(entry.name))
    return left


def stop_and_wait(process: subprocess.Popen[str], sig: signal.Signals, *, group: bool = False) -> int:
    """Send ``sig`` (to the whole group with ``group``); the exit status, within 15 s."""
    if group:
        os.killpg(process.pid, sig)
    else:
        process.send_signal(sig)
    try:
        return process.wait(15)
    except subprocess.TimeoutExpired:
        left = left_in_group(process.pid)
        raise AssertionError(
            f"{process.args!r} did not stop within 15 s of {sig.name}; pids left: {left}"
        ) from None


def nothing_left(process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 10
    while left_in_group(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left_in_group(process.pid) == []


# ---------------------------------------------------------------------------- gunicorn

GUNICORN_WORKERS = [
    pytest.param(["-k", "sync"], "served:application", id="sync"),
    pytest.param(["-k", "gthread", "--threads", "2"], "served:application", id="gthread"),
    pytest.param(["-k", "gevent"], "served:application", id="gevent"),
    pytest.param(["-k", "uvicorn.workers.UvicornWorker"], "served:app", id="uvicorn"),
]


def gunicorn(port: int, worker: list[str], target: str, preload: bool) -> list[str]:
    return [
        *TRACEKIT,
        "run",
        script("gunicorn"),
        "-w",
        "2",
        *worker,
        *(["--preload"] if preload else []),
        "-b",
        f"127.0.0.1:{port}",
        target,
    ]


def expected_gunicorn_spans(answers: Answers, target: str, loaded: int) -> dict[str, int]:
    expected = {"loaded": loaded, "handle": len(answers)}
    if target == "served:app":  # uvicorn's integration: a SERVER span around each request
        expected["GET"] = len(answers)
    return expected


def check_uvicorn_server_spans(spans: list[ReceivedSpan]) -> None:
    by_id = {span.span_id: span for span in spans}
    for handled in (span for span in spans if span.name == "handle"):
        assert handled.parent_span_id is not None
        server = by_id[handled.parent_span_id]
        assert (server.name, server.kind, server.parent_span_id) == ("GET", SpanKind.SERVER, None)
        assert server.attributes["url.path"] == handled.attributes["path"]
        assert server.resource["process.pid"] == handled.resource["process.pid"]


@pytest.mark.parametrize("preload", [pytest.param(True, id="preload"), pytest.param(False, id="no-preload")])
@pytest.mark.parametrize(("worker", "target"), GUNICORN_WORKERS)
def test_gunicorn_workers_export_their_own_spans(
    receiver: OTLPReceiver, tmp_path: Path, worker: list[str], target: str, preload: bool
) -> None:
    write_app(tmp_path)
    port = free_port()
    with started(gunicorn(port, worker, target, preload), environment(receiver), cwd=tmp_path) as arbiter:
        answers = serve(f"http://127.0.0.1:{port}", arbiter)
        workers = pids(answers)
        spans = wait_for_names(receiver, expected_gunicorn_spans(answers, target, 1 if preload else 2))
    check_workers(spans, answers, master=arbiter.pid)
    # --preload: the arbiter imported the application (and started its export thread) before forking.
    assert loaded_by(spans) == ([arbiter.pid] if preload else sorted(workers))
    if target == "served:app":
        check_uvicorn_server_spans(spans)


@pytest.mark.parametrize(
    ("worker", "target"),
    GUNICORN_WORKERS,
)
def test_gunicorn_flushes_every_process_at_a_graceful_stop(
    receiver: OTLPReceiver, tmp_path: Path, worker: list[str], target: str
) -> None:
    write_app(tmp_path)
    port = free_port()
    env = environment(receiver, OTEL_BSP_SCHEDULE_DELAY=HELD)
    with started(gunicorn(port, worker, target, preload=True), env, cwd=tmp_path) as arbiter:
        answers = serve(f"http://127.0.0.1:{port}", arbiter)
        time.sleep(0.3)
        assert receiver.spans == []  # held in the queues of the processes
        assert stop_and_wait(arbiter, signal.SIGTERM) == 0
        nothing_left(arbiter)
    spans = wait_for_names(receiver, expected_gunicorn_spans(answers, target, 1), timeout=AFTER_EXIT)
    check_workers(spans, answers, master=arbiter.pid)
    assert loaded_by(spans) == [arbiter.pid]


# ---------------------------------------------------------------------------- uWSGI

UWSGI_VARIANTS = [
    pytest.param([], id="no-master"),
    pytest.param(["--master"], id="master"),
    pytest.param(["--master", "--lazy-apps"], id="master-lazy-apps"),
    pytest.param(["--master", "--enable-threads"], id="master-enable-threads"),
]
LAUNCHED = pytest.param(True, id="tracekit-run")
CONFIGURED = pytest.param(False, id="configure-in-app")


def uwsgi(
    receiver: OTLPReceiver, directory: Path, port: int, options: list[str], launched: bool, **env: str
) -> tuple[list[str], dict[str, str]]:
    """The command and environment of a uWSGI serving ``served:application`` on ``port``."""
    command = [
        script("uwsgi"),
        "--http",
        f"127.0.0.1:{port}",
        "--module",
        "served:application",
        "--processes",
        "2",
        "--disable-logging",
        *options,
    ]
    if launched:
        return [*TRACEKIT, "run", *command], environment(receiver, **env)
    return command, environment(receiver, PYTHONPATH=str(directory), **env)


def stop_uwsgi(server: subprocess.Popen[str]) -> None:
    # SIGINT stops every uWSGI process at once, with or without a master (SIGTERM makes a
    # master without --die-on-term reload, that is re-exec itself).
    stop_and_wait(server, signal.SIGINT, group=True)
    nothing_left(server)


@pytest.mark.parametrize("launched", [LAUNCHED, CONFIGURED])
@pytest.mark.parametrize("options", UWSGI_VARIANTS)
def test_uwsgi_workers_export_their_own_spans(
    receiver: OTLPReceiver, tmp_path: Path, options: list[str], launched: bool
) -> None:
    write_app(tmp_path, *configured(launched))
    port = free_port()
    command, env = uwsgi(receiver, tmp_path, port, options, launched)
    lazy = "--lazy-apps" in options
    with started(command, env, cwd=tmp_path) as server:
        answers = serve(f"http://127.0.0.1:{port}", server)
        spans = wait_for_names(receiver, {"loaded": 2 if lazy else 1, "handle": len(answers)})
        stop_uwsgi(server)
    if "--master" in options:
        check_workers(spans, answers, master=server.pid)
        assert loaded_by(spans) == (sorted(pids(answers)) if lazy else [server.pid])
    else:  # the first process is worker 1: it imported the application, then served
        check_workers(spans, answers, master=None)
        assert server.pid in pids(answers)
        assert loaded_by(spans) == [server.pid]


@pytest.mark.parametrize("launched", [LAUNCHED, CONFIGURED])
def test_uwsgi_workers_flush_when_the_master_is_stopped(
    receiver: OTLPReceiver, tmp_path: Path, launched: bool
) -> None:
    write_app(tmp_path, *configured(launched))
    port = free_port()
    options = ["--master", "--die-on-term"]
    command, env = uwsgi(receiver, tmp_path, port, options, launched, OTEL_BSP_SCHEDULE_DELAY=HELD)
    with started(command, env, cwd=tmp_path) as server:
        answers = serve(f"http://127.0.0.1:{port}", server)
        time.sleep(0.3)
        assert receiver.spans == []  # held in the workers' queues
        assert stop_and_wait(server, signal.SIGTERM) == 0
        nothing_left(server)
    spans = wait_for_names(receiver, {"handle": len(answers)}, timeout=AFTER_EXIT, ignore="loaded")
    check_workers(spans, answers, master=server.pid)
    assert loaded_by(spans) in ([], [server.pid])  # the master's: see the next test


@pytest.mark.xfail(
    reason="uWSGI's master never runs Python's atexit (uwsgi_plugins_atexit returns early in the "
    "master, and the python plugin has no master_cleanup), so spans still queued in the master "
    "when it exits are lost",
    strict=True,
)
def test_uwsgi_master_flushes_its_own_spans_when_stopped(receiver: OTLPReceiver, tmp_path: Path) -> None:
    write_app(tmp_path)
    port = free_port()
    options = ["--master", "--die-on-term"]
    command, env = uwsgi(receiver, tmp_path, port, options, True, OTEL_BSP_SCHEDULE_DELAY=HELD)
    with started(command, env, cwd=tmp_path) as server:
        answers = serve(f"http://127.0.0.1:{port}", server)
        assert stop_and_wait(server, signal.SIGTERM) == 0
        nothing_left(server)
    spans = wait_for_names(receiver, {"loaded": 1, "handle": len(answers)}, timeout=AFTER_EXIT)
    assert loaded_by(spans) == [server.pid]


@pytest.mark.parametrize("launched", [LAUNCHED, CONFIGURED])
def test_uwsgi_recycled_workers_flush_as_they_exit(
    receiver: OTLPReceiver, tmp_path: Path, launched: bool
) -> None:
    write_app(tmp_path, *configured(launched))
    port = free_port()
    # --max-requests alone recycles nothing for a minute: min-worker-lifetime defaults to 60 s.
    options = ["--master", "--die-on-term", "--max-requests", "3", "--min-worker-lifetime", "0"]
    command, env = uwsgi(receiver, tmp_path, port, options, launched, OTEL_BSP_SCHEDULE_DELAY=HELD)
    with started(command, env, cwd=tmp_path) as server:
        # Three pids: at least one worker served its 3 requests, exited and was replaced.
        answers = serve(f"http://127.0.0.1:{port}", server, workers=3)
        served = Counter(answer["pid"] for answer in answers.values())
        recycled = {pid for pid, count in served.items() if count == 3}
        assert recycled, served
        assert max(served.values()) == 3
        expected = {path: a["pid"] for path, a in answers.items() if a["pid"] in recycled}
        # Only the recycled workers have exited: their spans, and nothing else, arrive while
        # the server runs.
        spans = wait_for_names(receiver, {"handle": len(expected)}, timeout=10)
        assert {s.attributes["path"]: s.resource["process.pid"] for s in spans} == expected
        receiver.clear()
        assert stop_and_wait(server, signal.SIGTERM) == 0
        nothing_left(server)
    rest = {path: a["pid"] for path, a in answers.items() if a["pid"] not in recycled}
    spans = wait_for_names(receiver, {"handle": len(rest)}, timeout=AFTER_EXIT, ignore="loaded")
    handled = [span for span in spans if span.name == "handle"]
    assert {s.attributes["path"]: s.resource["process.pid"] for s in handled} == rest
    assert loaded_by(spans) in ([], [server.pid])  # the master's: see the test above
    assert server.pid not in served


@pytest.mark.parametrize("launched", [LAUNCHED, CONFIGURED])
def test_uwsgi_chain_reload_flushes_each_replaced_worker(
    receiver: OTLPReceiver, tmp_path: Path, launched: bool
) -> None:
    write_app(tmp_path, *configured(launched))
    port = free_port()
    trigger = tmp_path / "reload"
    trigger.write_text("")
    options = ["--master", "--die-on-term", "--lazy-apps", "--touch-chain-reload", str(trigger)]
    command, env = uwsgi(receiver, tmp_path, port, options, launched, OTEL_BSP_SCHEDULE_DELAY=HELD)
    with started(command, env, cwd=tmp_path) as server:
        answers = serve(f"http://127.0.0.1:{port}", server)
        before = {answer["pid"] for answer in answers.values()}
        time.sleep(1.1)  # uWSGI compares the file's modification time in whole seconds
        os.utime(trigger)
        # One worker after the other is replaced; each flushes what it queued as it goes.
        spans = wait_for_names(receiver, {"handle": len(answers)}, timeout=20, ignore="loaded")
        handled = [span for span in spans if span.name == "handle"]
        assert {s.attributes["path"]: s.resource["process.pid"] for s in handled} == {
            path: answer["pid"] for path, answer in answers.items()
        }
        after = serve(f"http://127.0.0.1:{port}", server)
        assert not before & {answer["pid"] for answer in after.values()}
        assert stop_and_wait(server, signal.SIGTERM) == 0
        nothing_left(server)


@pytest.mark.parametrize(
    "setup",
    [
        pytest.param((), id="tracekit-run"),
        pytest.param((CONFIGURE, POSTFORK), id="configure-then-uwsgidecorators"),
        pytest.param((POSTFORK, CONFIGURE), id="uwsgidecorators-then-configure"),
    ],
)
def test_uwsgi_postfork_functions_run_after_tracekits_own(
    receiver: OTLPReceiver, tmp_path: Path, setup: tuple[str, ...]
) -> None:
    launched = not setup
    write_app(tmp_path, *(setup or (POSTFORK,)))
    port = free_port()
    command, env = uwsgi(receiver, tmp_path, port, ["--master"], launched)
    with started(command, env, cwd=tmp_path) as server:
        answers = serve(f"http://127.0.0.1:{port}", server)
        spans = wait_for_names(receiver, {"loaded": 1, "postfork": 2, "handle": len(answers)})
        stop_uwsgi(server)
    check_workers(spans, answers, master=server.pid)
    # The application's post-fork function ran in each worker...
    assert all(answer["postfork"] == answer["pid"] for answer in answers.values())
    # ...after tracekit's: its span already carries the worker's pid.
    postfork = sorted(span.resource["process.pid"] for span in spans if span.name == "postfork")
    assert postfork == sorted(pids(answers))
    assert loaded_by(spans) == [server.pid]


# ---------------------------------------------------------------------------- Celery prefork

REDIS_HOST = os.environ.get("TRACEKIT_TEST_REDIS_HOST") or "127.0.0.1"
REDIS_PORT = int(os.environ.get("TRACEKIT_TEST_REDIS_PORT") or "6379")
#: A database no other test uses; each test has a queue of its own, so that two test runs at
#: once on the machine never take each other's tasks.
BROKER = f"redis://{REDIS_HOST}:{REDIS_PORT}/11"

TASKS = """
    import os
    import time

    import celery
    import tracekit
    {setup}

    app = celery.Celery("tasks", broker=os.environ["TASKS_BROKER"], backend=os.environ["TASKS_BROKER"])
    app.conf.broker_connection_retry_on_startup = True
    app.conf.task_default_queue = os.environ["TASKS_QUEUE"]


    @app.task(name="tasks.work")
    def work(number):
        with tracekit.span("task", number=number):
            time.sleep(0.1)  # long enough that both pool processes take some
        return os.getpid()
"""


class Broker(NamedTuple):
    url: str
    queue: str


@pytest.fixture
def broker(pytestconfig: pytest.Config) -> Iterator[Broker]:
    """The machine's Redis, database 11, and a new queue; the queue's keys are deleted after."""
    root = Path(__file__).resolve().parent / "conftest.py"
    [conftest] = [
        plugin
        for plugin in pytestconfig.pluginmanager.get_plugins()
        if Path(getattr(plugin, "__file__", "") or "").resolve() == root
    ]
    conftest.require_service(
        "Redis", REDIS_HOST, REDIS_PORT, "apt-get install redis-server && service redis-server start"
    )
    import redis

    queue = f"tracekit-prefork-{uuid.uuid4().hex}"
    client = redis.Redis.from_url(BROKER)
    try:
        yield Broker(BROKER, queue)
    finally:
        for key in client.scan_iter(match=f"*{queue}*"):
            client.delete(key)
        client.close()


def celery_worker(
    receiver: OTLPReceiver, directory: Path, broker: Broker, launched: bool, *options: str, **env: str
) -> tuple[list[str], dict[str, str]]:
    write(directory, "tasks.py", TASKS.format(setup="" if launched else CONFIGURE))
    command = [
        script("celery"),
        "-A",
        "tasks",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        "2",
        "--loglevel",
        "WARNING",
        *options,
    ]
    env.update(TASKS_BROKER=broker.url, TASKS_QUEUE=broker.queue)
    if launched:
        return [*TRACEKIT, "run", *command], environment(receiver, **env)
    return command, environment(receiver, PYTHONPATH=str(directory), **env)


def run_tasks(broker: Broker, count: int) -> dict[int, int]:
    """Send ``count`` tasks; the pid that ran each, by its number."""
    import celery

    client = celery.Celery("client", broker=broker.url, backend=broker.url)
    try:
        results = [
            client.send_task("tasks.work", args=[number], queue=broker.queue) for number in range(count)
        ]
        ran = {number: result.get(timeout=30) for number, result in enumerate(results)}
        for result in results:
            result.forget()
        return ran
    finally:
        client.close()


def wait_for_tasks(receiver: OTLPReceiver, count: int, timeout: float) -> list[ReceivedSpan]:
    """Every span, once ``count`` task spans arrived (or ``timeout`` passed), and a little later."""
    deadline = time.monotonic() + timeout
    while len([s for s in receiver.spans if s.name == "task"]) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    return receiver.spans


def check_tasks(spans: list[ReceivedSpan], ran: dict[int, int], main: int) -> None:
    tasks = [span for span in spans if span.name == "task"]
    assert {span.attributes["number"]: span.resource["process.pid"] for span in tasks} == ran
    assert len(tasks) == len(ran)
    children = set(ran.values())
    assert len(children) == 2
    assert main not in children
    assert {span.resource["service.name"] for span in spans} == {"launched"}
    ids = {span.resource["process.pid"]: span.resource["service.instance.id"] for span in tasks}
    assert len(set(ids.values())) == 2
    # Everything else is Redis, from the main process (the broker) or a child (the results).
    for span in spans:
        if span.name != "task":
            assert span.kind is SpanKind.CLIENT, summary(spans)
            assert span.attributes["db.system.name"] == "redis"
            assert span.resource["process.pid"] in {main, *children}
            if span.resource["process.pid"] in children:
                assert span.resource["service.instance.id"] == ids[span.resource["process.pid"]]
            else:
                assert span.resource["service.instance.id"] not in ids.values()


@pytest.mark.parametrize("launched", [LAUNCHED, CONFIGURED])
def test_celery_prefork_children_export_their_own_spans(
    receiver: OTLPReceiver, tmp_path: Path, broker: Broker, launched: bool
) -> None:
    command, env = celery_worker(receiver, tmp_path, broker, launched)
    with started(command, env, cwd=tmp_path) as worker:
        ran = run_tasks(broker, 10)
        check_tasks(wait_for_tasks(receiver, 10, timeout=20), ran, main=worker.pid)
        assert stop_and_wait(worker, signal.SIGTERM) == 0  # warm shutdown
        nothing_left(worker)


@pytest.mark.parametrize("launched", [LAUNCHED, CONFIGURED])
def test_celery_pool_processes_flush_as_they_end(
    receiver: OTLPReceiver, tmp_path: Path, broker: Broker, launched: bool
) -> None:
    options = ("--max-tasks-per-child", "2")
    command, env = celery_worker(receiver, tmp_path, broker, launched, *options, OTEL_BSP_SCHEDULE_DELAY=HELD)
    with started(command, env, cwd=tmp_path) as worker:
        ran = run_tasks(broker, 7)  # odd: some pool process has run one task when the worker stops
        done = Counter(ran.values())
        assert worker.pid not in done
        assert set(done.values()) == {1, 2}, done  # --max-tasks-per-child: never more than 2
        # The pool processes that ran their two tasks were replaced: their spans, and no
        # other task's, arrive while the worker runs.
        recycled = {number: pid for number, pid in ran.items() if done[pid] == 2}
        tasks = [span for span in wait_for_tasks(receiver, len(recycled), timeout=10) if span.name == "task"]
        assert {span.attributes["number"]: span.resource["process.pid"] for span in tasks} == recycled
        assert len(tasks) == len(recycled)
        receiver.clear()
        # A warm shutdown: the others end and flush.
        assert stop_and_wait(worker, signal.SIGTERM) == 0
        nothing_left(worker)
    rest = {number: pid for number, pid in ran.items() if done[pid] == 1}
    tasks = [span for span in wait_for_tasks(receiver, len(rest), timeout=AFTER_EXIT) if span.name == "task"]
    assert {span.attributes["number"]: span.resource["process.pid"] for span in tasks} == rest
    assert len(tasks) == len(rest)
