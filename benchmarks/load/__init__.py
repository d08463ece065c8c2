"""A service under load: what tracing costs a real server, end to end (``nox -s load``).

A FastAPI service on uvicorn and a Flask service on gunicorn's sync workers, each pinned to
one core, serve three routes against the machine's PostgreSQL and a loopback stub while wrk
drives them from the other core, untraced and under tracekit, the OpenTelemetry agent
(``opentelemetry-instrument``) and ddtrace (``ddtrace-run``). See ``benchmarks/load/__main__.py``
for what is measured and how; the figures go to docs/performance.md.
"""

from __future__ import annotations

import os

__all__ = ["DSN", "QUERY", "STUB_URL"]

#: The one query ``/db/{id}`` and ``/chain`` run.
QUERY = "SELECT %s::int AS id, 'item' AS name"
#: The PostgreSQL conninfo and the stub ``/chain`` calls, as the harness passes them.
DSN = os.environ.get("LOAD_DSN", "host=127.0.0.1 port=5432 dbname=test user=postgres")
STUB_URL = os.environ.get("LOAD_STUB_URL", "http://127.0.0.1:9/")
