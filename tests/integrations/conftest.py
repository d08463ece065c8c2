"""Real HTTP servers on 127.0.0.1 for the client integrations, and span checks.

Both servers answer the same routes:

* ``/ok`` (any method): 200 with ``{"path": ..., "headers": {...}}``, the request's headers lowercased;
* ``/status/<code>``: that status code;
* ``/redirect``: 302 to ``/ok``; ``/redirect-twice``: 302 to ``/redirect``;
* ``/slow``: 200 after one second (read timeouts);
* ``/stream``: a chunked body of five ``chunk-N`` pieces;
* ``/reply-headers``: 200 with ``X-Reply: one``, ``X-Reply: two`` and ``Set-Cookie``.

Every request a server receives is appended, with its lowercased headers, to ``server.seen``.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from httpcheck import capture_client_spans

from tracekit.testing import SpanRecorder


@dataclass
class Server:
    """A running test server: its base URL, port and the requests it received."""

    base: str
    port: int
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    def last_headers(self, path: str) -> dict[str, str]:
        matching = [headers for _, seen_path, headers in self.seen if seen_path.split("?")[0] == path]
        assert matching, f"the server received no request for {path}: {self.seen}"
        return matching[-1]


def _route(path: str) -> tuple[int, list[tuple[str, str]], bytes | None]:
    """Status, extra headers and body (``None`` for the routes the servers handle themselves)."""
    bare = path.split("?")[0]
    if bare == "/redirect":
        return 302, [("Location", "/ok")], b""
    if bare == "/redirect-twice":
        return 302, [("Location", "/redirect")], b""
    if bare.startswith("/status/"):
        return int(bare.rsplit("/", 1)[1]), [], b"status"
    if bare == "/reply-headers":
        return 200, [("X-Reply", "one"), ("X-Reply", "two"), ("Set-Cookie", "session=secret")], b"ok"
    return 200, [], None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _StdlibHTTPServer

    def _handle(self) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.record.seen.append((self.command, self.path, headers))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status, extra, body = _route(self.path)
        bare = self.path.split("?")[0]
        if bare == "/slow":
            time.sleep(1.0)
        if bare == "/stream":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for number in range(5):
                piece = f"chunk-{number}".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        if body is None:
            body = json.dumps({"path": self.path, "headers": headers}).encode()
        self.send_response(status)
        for name, value in extra:
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # any other method (the _OTHER tests) is served like GET
            return self._handle
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _StdlibHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    record: Server

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out has gone away; anything else is a bug in the test server.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture(scope="session")
def http_server() -> Iterator[Server]:
    """The standard library's ThreadingHTTPServer on 127.0.0.1."""
    server = _StdlibHTTPServer(("127.0.0.1", 0), _Handler)
    port = server.server_address[1]
    server.record = Server(f"http://127.0.0.1:{port}", port)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.record
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _asgi_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    record: list[tuple[str, str, dict[str, str]]] = []

    async def anything(request: Request) -> Response:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        headers = {name.lower(): value for name, value in request.headers.items()}
        record.append((request.method, path, headers))
        await request.body()
        if request.url.path == "/slow":
            await asyncio.sleep(1.0)
        if request.url.path == "/stream":

            async def pieces() -> Any:
                for number in range(5):
                    yield f"chunk-{number}".encode()

            return StreamingResponse(pieces())
        status, extra, body = _route(path)
        if body is None:
            return JSONResponse({"path": path, "headers": headers}, status_code=status)
        response = Response(body, status_code=status)
        for name, value in extra:
            response.headers.append(name, value)
        return response

    methods = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "PURGE"]
    app = Starlette(routes=[Route("/{path:path}", anything, methods=methods)])
    app.state.record = record
    return app


@pytest.fixture(scope="session")
def asgi_server() -> Iterator[Server]:
    """A Starlette application served by uvicorn on 127.0.0.1."""
    import uvicorn

    app = _asgi_app()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
        time.sleep(0.01)
    record = Server(f"http://127.0.0.1:{port}", port)
    record.seen = app.state.record
    try:
        yield record
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def http_spans() -> Iterator[SpanRecorder]:
    """Spans recorded in memory, only the HTTP client integrations on (the test servers stay untraced)."""
    with capture_client_spans(service_name="tests") as recorder:
        yield recorder
