"""A stand-in for the Datadog agent on 127.0.0.1 that counts the spans ddtrace sends it.

It answers ``PUT``/``POST`` of ``/v0.4/traces`` (a msgpack array of traces, each an array of
span maps) with ``{}`` and 404 to everything else, which ddtrace reads as an agent without
the optional endpoints (no client-side stats, no remote configuration).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgpack

__all__ = ["DatadogAgentStub"]


class DatadogAgentStub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._span_ids: set[int] = set()
        self.spans = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.path != "/v0.4/traces":
                    self._answer(404, b"{}")
                    return
                stub._record(msgpack.unpackb(body, strict_map_key=False))
                self._answer(200, b'{"rate_by_service":{}}')

            do_POST = do_PUT

            def do_GET(self) -> None:
                self._answer(404, b"{}")

            def log_message(self, format: str, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _record(self, traces: Any) -> None:
        with self._lock:
            for trace in traces:
                for span in trace:
                    self.spans += 1
                    self._span_ids.add(span["span_id"])

    def unique_spans(self) -> int:
        with self._lock:
            return len(self._span_ids)

    def clear(self) -> None:
        with self._lock:
            self._span_ids.clear()
            self.spans = 0

    def __enter__(self) -> DatadogAgentStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
