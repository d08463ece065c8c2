"""Real HTTP servers on 127.0.0.1 for the server integrations, and exact server-span checks.

Every server runs in a daemon thread on a port the kernel picked, and is stopped (and its
thread joined, within a bound) when its ``with`` block ends.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from tracekit.testing import SpanRecorder

#: The integrations that make server spans (client integrations stay off unless a test wants them).
SERVER_INTEGRATIONS = ["starlette", "fastapi", "uvicorn", "hypercorn", "flask", "django"]

START_TIMEOUT = 10.0


@dataclass(frozen=True)
class Served:
    """A running server: its base URL and port."""

    base: str
    port: int

    def url(self, path: str) -> str:
        return self.base + path


def _loopback_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def uvicorn_server(app: Any, **options: Any) -> Iterator[Served]:
    """``app`` served by uvicorn (the app object is loaded by ``uvicorn.Config.load``)."""
    import uvicorn

    sock = _loopback_socket()
    port = sock.getsockname()[1]
    settings = {"log_level": "warning", "lifespan": "off", "access_log": False, "ws": "websockets-sansio"}
    settings.update(options)
    server = uvicorn.Server(uvicorn.Config(app, **settings))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, f"uvicorn did not start within {START_TIMEOUT} s"
            time.sleep(0.01)
        yield Served(f"http://127.0.0.1:{port}", port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop within 10 s"


@contextmanager
def hypercorn_server(app: Any) -> Iterator[Served]:
    """``app`` served by hypercorn's asyncio worker."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    sock = _loopback_socket()
    port = sock.getsockname()[1]
    sock.listen(64)
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 1.0
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()

    async def main() -> None:
        started.set()
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        assert started.wait(START_TIMEOUT), "hypercorn did not start"
        _wait_for_port(port)
        yield Served(f"http://127.0.0.1:{port}", port)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        assert not thread.is_alive(), "hypercorn did not stop within 10 s"
        loop.close()


@contextmanager
def wsgi_server(app: Any, kind: str = "werkzeug") -> Iterator[Served]:
    """``app`` served by werkzeug's threaded server, or by the standard library's wsgiref."""
    if kind == "werkzeug":
        from werkzeug.serving import make_server

        server: Any = make_server("127.0.0.1", 0, app, threaded=True)
    else:
        import socketserver
        from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

        class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
            daemon_threads = True

        class QuietHandler(WSGIRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = make_server("127.0.0.1", 0, app, ThreadingWSGIServer, QuietHandler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{port}", port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the WSGI server did not stop within 10 s"


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on port {port}"
            time.sleep(0.02)


def wait_for_spans(recorder: SpanRecorder, count: int, timeout: float = 5.0) -> list[ReadableSpan]:
    """The recorded spans once there are ``count`` (servers end theirs after answering)."""
    deadline = time.monotonic() + timeout
    while True:
        spans = recorder.spans
        if len(spans) >= count or time.monotonic() > deadline:
            return spans
        time.sleep(0.02)


def traceparent_of(span: ReadableSpan) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags) & 3:02x}"


def check_server_span(
    span: ReadableSpan,
    *,
    port: int,
    path: str,
    route: str | None = None,
    method: str = "GET",
    status: int | None = 200,
    query: str | None = None,
    scheme: str = "http",
    user_agent: str | None = None,
    error_type: str | None = None,
    protocol: str | None = "1.1",
    extra: dict[str, Any] | None = None,
) -> None:
    """Assert the exact name, kind, attributes and status of an HTTP server span."""
    expected: dict[str, Any] = {
        "http.request.method": method,
        "url.scheme": scheme,
        "url.path": path,
        "server.address": "127.0.0.1",
        "server.port": port,
        "client.address": "127.0.0.1",
        "network.peer.address": "127.0.0.1",
    }
    if query is not None:
        expected["url.query"] = query
    if user_agent is not None:
        expected["user_agent.original"] = user_agent
    if protocol is not None:
        expected["network.protocol.version"] = protocol
    if route is not None:
        expected["http.route"] = route
    if status is not None:
        expected["http.response.status_code"] = status
    if error_type is not None:
        expected["error.type"] = error_type
    expected.update(extra or {})
    assert span.name == (f"{method} {route}" if route is not None else method)
    assert span.kind is SpanKind.SERVER
    assert dict(span.attributes or {}) == expected
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "tracekit"
    if error_type is None:
        assert span.status.status_code is StatusCode.UNSET
        assert not span.events
    else:
        assert span.status.status_code is StatusCode.ERROR


def check_exception_event(span: ReadableSpan, error_type: str, message: str) -> None:
    """The span carries exactly one ``exception`` event for ``error_type``."""
    (event,) = span.events
    assert event.name == "exception"
    attributes = dict(event.attributes or {})
    assert attributes["exception.type"] == error_type
    assert attributes["exception.message"] == message
    assert error_type.rsplit(".", 1)[-1] in str(attributes["exception.stacktrace"])


def server_spans(recorder: SpanRecorder) -> list[ReadableSpan]:
    return [span for span in recorder.spans if span.kind is SpanKind.SERVER]


def only(spans: list[ReadableSpan], predicate: Callable[[ReadableSpan], bool]) -> ReadableSpan:
    found = [span for span in spans if predicate(span)]
    assert len(found) == 1, [span.name for span in spans]
    return found[0]


def in_start_order(recorder: SpanRecorder) -> list[ReadableSpan]:
    """The recorded spans in the order their requests arrived (they may end in another order)."""
    return sorted(recorder.spans, key=lambda span: span.start_time or 0)


def configure_django() -> None:
    """Settings for the test project in ``django_project`` (once per process)."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF="django_project.urls",
            SECRET_KEY="tests",
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            DATABASES={},
            LOGGING_CONFIG=None,
        )
        django.setup()
