"""``tracekit run``: real commands in subprocesses, exporting to a real OTLP receiver.

Each test starts the command as a user would (a script, ``python -m``, uvicorn, gunicorn,
multiprocessing), makes it do some work, and checks the spans that arrive: their names,
links, and the ``process.pid`` of the resource, which says which process exported them.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest
from opentelemetry.trace import SpanKind

from launcher_support import (
    environment,
    free_port,
    get,
    run,
    script,
    started,
    tracekit_command,
    wait_until_serving,
)
from tracekit._launcher import BOOTSTRAP_DIR, launch_environment, sdk_disabled
from tracekit._receiver import ReceivedSpan
from tracekit._registry import BY_NAME
from tracekit._settings import declarations, load
from tracekit.testing import OTLPReceiver

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fork, exec and process groups are POSIX")

TRACEKIT = tracekit_command()


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def spans_named(receiver: OTLPReceiver, name: str, count: int, timeout: float = 20.0) -> list[ReceivedSpan]:
    """Wait until ``count`` spans called ``name`` have arrived; return them."""
    deadline = time.monotonic() + timeout
    while True:
        found = [span for span in receiver.spans if span.name == name]
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) >= count, (
                f"{count} spans {name!r} expected, got {[s.name for s in receiver.spans]}"
            )
            return found
        time.sleep(0.05)


# ---------------------------------------------------------------------------- the environment


def test_launch_environment_puts_the_bootstrap_first_once() -> None:
    env = launch_environment({"PYTHONPATH": os.pathsep.join(["/app/lib", BOOTSTRAP_DIR, "/more"])})
    assert env["PYTHONPATH"].split(os.pathsep) == [BOOTSTRAP_DIR, "/app/lib", "/more"]
    assert launch_environment({})["PYTHONPATH"] == BOOTSTRAP_DIR


@pytest.mark.parametrize("value", ["true", "TRUE", " true "])
def test_launch_environment_is_untouched_when_disabled(value: str) -> None:
    original = {"OTEL_SDK_DISABLED": value, "PYTHONPATH": "/app/lib"}
    assert launch_environment(original) == original


@pytest.mark.parametrize("value", ["true", " True ", "false", "FALSE", "", "  ", "yes", "1", "truee"])
def test_the_launcher_reads_sdk_disabled_as_its_declaration_does(value: str) -> None:
    [decl] = [decl for decl in declarations() if decl.name == "disabled"]
    settings = load(environ={"OTEL_SDK_DISABLED": value}).settings
    assert decl.env == ("OTEL_SDK_DISABLED",)
    assert sdk_disabled({"OTEL_SDK_DISABLED": value}) is settings.disabled


def test_run_without_a_command_prints_usage() -> None:
    done = run([*TRACEKIT, "run"], environment())
    assert done.returncode == 2
    assert "usage: tracekit run CMD [ARGS...]" in done.stderr


def test_run_of_a_missing_command_exits_127() -> None:
    done = run([*TRACEKIT, "run", "no-such-command-anywhere"], environment())
    assert done.returncode == 127
    assert "tracekit run: command not found: no-such-command-anywhere" in done.stderr


# ---------------------------------------------------------------------------- python app.py, python -m pkg

APP = """
    import json, os, sys
    import tracekit

    @tracekit.traced
    def work(n):
        return n * 2

    if __name__ == "__main__":
        work(21)
        print(json.dumps({
            "name": __name__,
            "argv": sys.argv,
            "path": sys.path,
            "pid": os.getpid(),
            "configured": tracekit._state.current is not None,
            "sitecustomize": getattr(sys.modules.get("sitecustomize"), "__file__", None),
        }))
"""


def test_python_script_keeps_main_argv_and_sys_path(receiver: OTLPReceiver, tmp_path: Path) -> None:
    app = write(tmp_path, "app.py", APP)
    env = environment(receiver)
    plain = run([sys.executable, str(app), "--flag", "value"], env, cwd=tmp_path)
    done = run([*TRACEKIT, "run", sys.executable, str(app), "--flag", "value"], env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    seen, without = json.loads(done.stdout), json.loads(plain.stdout)
    assert seen["name"] == "__main__"
    assert seen["argv"] == [str(app), "--flag", "value"]
    assert seen["path"] == without["path"]  # exactly what the application sees without tracekit
    assert seen["configured"] is True
    assert without["configured"] is False

    [span] = spans_named(receiver, "work", 1)
    assert span.kind is SpanKind.INTERNAL
    assert span.resource["service.name"] == "launched"
    assert span.resource["process.pid"] == seen["pid"]
    assert span.scope_name == "tracekit"
    assert receiver.span_count == 1  # the uninstrumented run exported nothing


def test_python_dash_m_package(receiver: OTLPReceiver, tmp_path: Path) -> None:
    write(tmp_path, "pkg/__init__.py", "")
    write(tmp_path, "pkg/__main__.py", APP.replace('if __name__ == "__main__":', "if True:"))
    done = run([*TRACEKIT, "run", sys.executable, "-m", "pkg", "x"], environment(receiver), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["name"] == "__main__"
    assert seen["argv"] == [str(tmp_path / "pkg" / "__main__.py"), "x"]
    [span] = spans_named(receiver, "work", 1)
    assert span.resource["process.pid"] == seen["pid"]


def test_python_dash_m_tracekit_run(receiver: OTLPReceiver, tmp_path: Path) -> None:
    app = write(tmp_path, "app.py", APP)
    done = run([sys.executable, "-m", "tracekit", "run", sys.executable, str(app)], environment(receiver))
    assert done.returncode == 0, done.stderr
    [span] = spans_named(receiver, "work", 1)
    assert span.resource["process.pid"] == json.loads(done.stdout)["pid"]


def test_the_applications_own_sitecustomize_still_runs(receiver: OTLPReceiver, tmp_path: Path) -> None:
    own = write(tmp_path / "site", "sitecustomize.py", "import os\nos.environ['APP_SITECUSTOMIZE'] = 'ran'\n")
    app = write(
        tmp_path,
        "app.py",
        APP.replace('"name": __name__,', '"name": __name__, "marker": os.environ.get("APP_SITECUSTOMIZE"),'),
    )
    env = environment(receiver, PYTHONPATH=str(own.parent))
    done = run([*TRACEKIT, "run", sys.executable, str(app)], env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["marker"] == "ran"
    assert seen["sitecustomize"] == str(own)
    assert seen["path"] == json.loads(run([sys.executable, str(app)], env, cwd=tmp_path).stdout)["path"]
    spans_named(receiver, "work", 1)


def test_sdk_disabled_runs_the_command_untouched(receiver: OTLPReceiver, tmp_path: Path) -> None:
    app = write(
        tmp_path,
        "app.py",
        """
        import json, os, sys
        print(json.dumps({
            "pythonpath": os.environ.get("PYTHONPATH"),
            "imported": sorted(
                m for m in sys.modules if m.split(".")[0] in ("tracekit", "opentelemetry", "wrapt")
            ),
        }))
        """,
    )
    env = environment(receiver, OTEL_SDK_DISABLED="true", PYTHONPATH="/app/lib")
    done = run([*TRACEKIT, "run", sys.executable, str(app)], env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"pythonpath": "/app/lib", "imported": []}
    assert done.stderr == ""


def test_a_bad_propagators_value_does_not_stop_the_application(
    receiver: OTLPReceiver, tmp_path: Path
) -> None:
    app = write(
        tmp_path,
        "app.py",
        """
        import opentelemetry.propagate
        import tracekit

        carrier = {}
        with tracekit.span("outgoing"):
            opentelemetry.propagate.inject(carrier)
        print(sorted(carrier))
        """,
    )
    env = environment(receiver, OTEL_PROPAGATORS="tracecontext,baggagee")
    done = run([*TRACEKIT, "run", sys.executable, str(app)], env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['traceparent', 'tracestate']"
    [warning] = done.stderr.strip().splitlines()
    assert "OTEL_PROPAGATORS" in warning
    assert "'baggagee'" in warning
    spans_named(receiver, "outgoing", 1)


def test_configure_in_code_under_the_launcher_keeps_the_environment(
    receiver: OTLPReceiver, tmp_path: Path
) -> None:
    app = write(
        tmp_path,
        "app.py",
        """
        import tracekit
        tracing = tracekit.configure(service_name="from-code")
        assert tracekit.configure() is tracing
        with tracekit.span("step"):
            pass
        """,
    )
    done = run([*TRACEKIT, "run", sys.executable, str(app)], environment(receiver))
    assert done.returncode == 0, done.stderr
    [warning] = done.stderr.strip().splitlines()
    assert "configured by `tracekit run`" in warning
    assert "service_name=..." in warning
    [span] = spans_named(receiver, "step", 1)
    assert span.resource["service.name"] == "launched"


# ---------------------------------------------------------------------------- multiprocessing

MULTIPROCESSING_APP = """
    import json, multiprocessing, os, sys
    import tracekit

    def work(queue):
        with tracekit.span("child work"):
            pass
        queue.put(os.getpid())

    if __name__ == "__main__":
        context = multiprocessing.get_context(sys.argv[1])
        queue = context.Queue()
        with tracekit.span("parent work"):
            child = context.Process(target=work, args=(queue,))
            child.start()
            pid = queue.get(timeout=20)
            child.join(20)
        print(json.dumps({"parent": os.getpid(), "child": pid, "exitcode": child.exitcode}))
"""


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_multiprocessing_children_export_their_own_spans(
    receiver: OTLPReceiver, tmp_path: Path, start_method: str
) -> None:
    app = write(tmp_path, "app.py", MULTIPROCESSING_APP)
    done = run([*TRACEKIT, "run", sys.executable, str(app), start_method], environment(receiver))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # configured once per process: no "already configured" warning
    pids = json.loads(done.stdout)
    assert pids["exitcode"] == 0
    [child] = spans_named(receiver, "child work", 1)
    [parent] = spans_named(receiver, "parent work", 1)
    assert child.resource["process.pid"] == pids["child"] != pids["parent"]
    assert parent.resource["process.pid"] == pids["parent"]
    assert child.resource["service.instance.id"] != parent.resource["service.instance.id"]
    if start_method == "fork":  # the child inherits the context it was forked in
        assert child.trace_id == parent.trace_id
        assert child.parent_span_id == parent.span_id
    else:
        assert child.trace_id != parent.trace_id
        assert child.parent_span_id is None


# ---------------------------------------------------------------------------- uvicorn

ASGI_APP = """
    import os
    import tracekit

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        with tracekit.span("handle", path=scope["path"]):
            body = str(os.getpid()).encode()
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
"""


def check_request_spans(receiver: OTLPReceiver, pid: int, path: str, *, server_span: bool = True) -> None:
    """The request to ``path`` served by process ``pid`` arrived from that process, whole.

    ``server_span``: whether a server integration traces the request (uvicorn's does, for
    any ASGI application it serves), making the SERVER span the parent of the app's span.
    """
    deadline = time.monotonic() + 20
    while True:
        handled = [s for s in receiver.spans if s.name == "handle" and s.attributes.get("path") == path]
        if handled or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(handled) == 1, [(s.name, s.attributes) for s in receiver.spans]
    [span] = handled
    assert span.resource["process.pid"] == pid
    assert span.resource["service.name"] == "launched"
    if not server_span or "uvicorn" not in BY_NAME:
        assert span.parent_span_id is None
        return
    [server] = [s for s in receiver.spans if s.span_id == span.parent_span_id]
    assert (server.name, server.kind, server.parent_span_id) == ("GET", SpanKind.SERVER, None)
    assert server.attributes["http.request.method"] == "GET"
    assert server.attributes["url.path"] == path
    assert server.attributes["http.response.status_code"] == 200
    assert server.resource["process.pid"] == pid


def test_uvicorn(receiver: OTLPReceiver, tmp_path: Path) -> None:
    write(tmp_path, "app.py", ASGI_APP)
    port = free_port()
    command = [*TRACEKIT, "run", script("uvicorn"), "app:app", "--host", "127.0.0.1", "--port", str(port)]
    with started(command, environment(receiver), cwd=tmp_path) as server:
        wait_until_serving(f"http://127.0.0.1:{port}/ready", server)
        _, body = get(f"http://127.0.0.1:{port}/checkout")
        assert int(body) == server.pid  # exec: the launcher became uvicorn
        check_request_spans(receiver, server.pid, "/checkout")


def test_hypercorn(receiver: OTLPReceiver, tmp_path: Path) -> None:
    write(tmp_path, "app.py", ASGI_APP)
    port = free_port()
    command = [*TRACEKIT, "run", script("hypercorn"), "app:app", "--bind", f"127.0.0.1:{port}"]
    with started(command, environment(receiver), cwd=tmp_path) as server:
        wait_until_serving(f"http://127.0.0.1:{port}/ready", server)
        _, body = get(f"http://127.0.0.1:{port}/checkout")
        check_request_spans(receiver, int(body), "/checkout")


def test_uvicorn_reload_exports_from_the_serving_child_only(receiver: OTLPReceiver, tmp_path: Path) -> None:
    write(tmp_path, "app.py", ASGI_APP)
    port = free_port()
    command = [
        *TRACEKIT,
        "run",
        script("uvicorn"),
        "app:app",
        "--reload",
        "--reload-dir",
        str(tmp_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with started(command, environment(receiver), cwd=tmp_path) as reloader:
        wait_until_serving(f"http://127.0.0.1:{port}/ready", reloader)
        _, body = get(f"http://127.0.0.1:{port}/checkout")
        child = int(body)
        assert child != reloader.pid
        check_request_spans(receiver, child, "/checkout")
        assert {span.resource["process.pid"] for span in receiver.spans} == {child}


def test_uvicorn_workers(receiver: OTLPReceiver, tmp_path: Path) -> None:
    write(tmp_path, "app.py", ASGI_APP)
    port = free_port()
    command = [
        *TRACEKIT,
        "run",
        script("uvicorn"),
        "app:app",
        "--workers",
        "2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with started(command, environment(receiver), cwd=tmp_path) as supervisor:
        served = serve_until_two_workers_answered(f"http://127.0.0.1:{port}", supervisor)
        assert supervisor.pid not in served
        for pid, path in served.items():
            check_request_spans(receiver, pid, path)


def serve_until_two_workers_answered(base: str, server: object) -> dict[int, str]:
    """Send requests on fresh connections until two different workers answered: pid -> path."""
    wait_until_serving(f"{base}/ready", server)  # type: ignore[arg-type]
    served: dict[int, str] = {}
    deadline = time.monotonic() + 30
    number = 0
    while len(served) < 2 and time.monotonic() < deadline:
        number += 1
        path = f"/request-{number}"
        _, body = get(base + path)
        served.setdefault(int(body), path)
        if len(served) < 2:
            time.sleep(0.02)
    assert len(served) == 2, f"only workers {sorted(served)} answered {number} requests"
    return served


# ---------------------------------------------------------------------------- gunicorn


def test_gunicorn_with_uvicorn_workers(receiver: OTLPReceiver, tmp_path: Path) -> None:
    write(tmp_path, "app.py", ASGI_APP)
    port = free_port()
    command = [
        *TRACEKIT,
        "run",
        script("gunicorn"),
        "-w",
        "2",
        "-k",
        "uvicorn.workers.UvicornWorker",
        "-b",
        f"127.0.0.1:{port}",
        "app:app",
    ]
    with started(command, environment(receiver), cwd=tmp_path) as arbiter:
        served = serve_until_two_workers_answered(f"http://127.0.0.1:{port}", arbiter)
        assert arbiter.pid not in served
        for pid, path in served.items():
            check_request_spans(receiver, pid, path)


WSGI_APP = """
    import os
    import tracekit

    with tracekit.span("loaded"):  # in the arbiter, before the workers are forked (--preload)
        PARENT = os.getpid()

    def app(environ, start_response):
        with tracekit.span("handle", path=environ["PATH_INFO"]):
            body = str(os.getpid()).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
"""


def test_gunicorn_preload_sync_workers_export_their_own_spans(receiver: OTLPReceiver, tmp_path: Path) -> None:
    write(tmp_path, "wsgi_app.py", WSGI_APP)
    port = free_port()
    command = [
        *TRACEKIT,
        "run",
        script("gunicorn"),
        "--preload",
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{port}",
        "wsgi_app:app",
    ]
    with started(command, environment(receiver), cwd=tmp_path) as arbiter:
        [loaded] = spans_named(receiver, "loaded", 1)
        assert loaded.resource["process.pid"] == arbiter.pid
        served = serve_until_two_workers_answered(f"http://127.0.0.1:{port}", arbiter)
        assert arbiter.pid not in served
        for pid, path in served.items():
            check_request_spans(receiver, pid, path, server_span=False)  # no integration for plain WSGI
        ids = {s.resource["service.instance.id"] for s in receiver.spans}
        assert len(ids) == 3  # the arbiter and each worker are instances of their own


FLASK_APP = """
    import os
    import tracekit
    from flask import Flask

    app = Flask(__name__)

    @app.get("/ready")
    def ready():
        return "ok"

    @app.get("/orders/<int:order_id>")
    def order(order_id):
        with tracekit.span("handle", path=f"/orders/{order_id}"):
            return str(os.getpid())
"""


def test_flask_run_a_console_script(receiver: OTLPReceiver, tmp_path: Path) -> None:
    write(tmp_path, "flask_app.py", FLASK_APP)
    port = free_port()
    command = [
        *TRACEKIT,
        "run",
        script("flask"),
        "--app",
        "flask_app",
        "run",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-reload",
    ]
    with started(command, environment(receiver), cwd=tmp_path) as server:
        wait_until_serving(f"http://127.0.0.1:{port}/ready", server)
        _, body = get(f"http://127.0.0.1:{port}/orders/7")
        assert int(body) == server.pid  # exec: the launcher became flask's own script
        [handled] = [s for s in spans_named(receiver, "handle", 1) if s.attributes.get("path") == "/orders/7"]
        [request] = [s for s in receiver.spans if s.span_id == handled.parent_span_id]
    assert (request.name, request.kind, request.parent_span_id) == (
        "GET /orders/<int:order_id>",
        SpanKind.SERVER,
        None,
    )
    assert request.attributes["http.route"] == "/orders/<int:order_id>"
    assert request.attributes["http.response.status_code"] == 200
    assert request.resource["process.pid"] == handled.resource["process.pid"] == server.pid
    assert request.resource["service.name"] == "launched"
