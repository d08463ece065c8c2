"""An application with no tracekit code at all: run it through the launcher.

    OTEL_SERVICE_NAME=report-job OTEL_TRACES_EXPORTER=console \\
        tracekit run python examples/usage/launched_app.py

Spans made through the OpenTelemetry API (here, by hand; usually by the integrations)
are exported by the tracer provider the launcher installed before this file ran.
"""

from __future__ import annotations

import sqlite3

from opentelemetry import trace


def main() -> None:
    tracer = trace.get_tracer("report-job")
    with tracer.start_as_current_span("build_report"):
        db = sqlite3.connect(":memory:")
        db.execute("CREATE TABLE orders (id INTEGER, total INTEGER)")
        db.execute("INSERT INTO orders VALUES (1, 2500)")
        db.execute("SELECT total FROM orders WHERE id = 1").fetchall()
        db.close()


if __name__ == "__main__":
    main()
