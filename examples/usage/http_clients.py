"""HTTP client spans: httpx and requests calling a local server.

    python examples/usage/http_clients.py

Each request is one CLIENT span named after its method; the server receives the span's
``traceparent`` header, so its own spans (if it is traced) join the same trace.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import tracekit


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 404 if self.path.startswith("/missing") else 200
        body = self.headers.get("traceparent", "").encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    tracekit.configure(service_name="catalog-client", exporters=["console"])
    import httpx
    import requests

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with tracekit.span("sync_catalog"):
            with httpx.Client() as client:
                print("server saw traceparent:", client.get(f"{base}/items").text)
            requests.get(f"{base}/missing", timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    tracekit.shutdown()


if __name__ == "__main__":
    main()
