"""A tiny HTTP/1.1 keep-alive server on 127.0.0.1 for the client benchmarks.

Run as ``python -m benchmarks._http_server [SECONDS]``: it prints its port on the first line
of stdout and serves ``200 ok`` to every GET until its stdin closes (the parent exited or
closed the pipe) or ``SECONDS`` pass (``MAX_LIFETIME`` by default). A GET of ``ECHO_PATH`` gets the same
answer plus an ``ECHO_HEADER`` header holding the request's ``traceparent`` (``none`` when
there was none), so that a client benchmark can check what context it sent. It runs in its
own process so that the server's work never competes for the client's interpreter lock.
"""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["ECHO_HEADER", "ECHO_PATH", "MAX_LIFETIME", "main"]

MAX_LIFETIME = 900.0
_BODY = b'{"status":"ok"}'
ECHO_PATH = "/echo/traceparent"
ECHO_HEADER = "X-Traceparent-Echo"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are written separately: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK would add about 40 ms to every response.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(_BODY)))
        if self.path == ECHO_PATH:
            # A header, not the body: the response is written the same way with or without one.
            self.send_header(ECHO_HEADER, self.headers.get("traceparent") or "none")
        self.end_headers()
        self.wfile.write(_BODY)

    def log_message(self, format: str, *args: object) -> None:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def main() -> None:
    server = _Server(("127.0.0.1", 0), _Handler)
    print(server.server_address[1], flush=True)

    def stop_when_parent_goes() -> None:
        sys.stdin.read()
        server.shutdown()

    threading.Thread(target=stop_when_parent_goes, daemon=True).start()
    lifetime = float(sys.argv[1]) if len(sys.argv) > 1 else MAX_LIFETIME
    timer = threading.Timer(lifetime, server.shutdown)
    timer.daemon = True
    timer.start()
    server.serve_forever(poll_interval=0.1)
    server.server_close()


if __name__ == "__main__":
    main()
