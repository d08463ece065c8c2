"""The WSGI service: Flask, one psycopg connection and one requests session per worker.

No tracing code: each variant starts it unchanged (``gunicorn benchmarks.load.wsgi:app``).
The connection and the session are made on first use, so in the worker after the fork.
"""

from __future__ import annotations

from typing import Any

import psycopg
import requests
from flask import Flask

from benchmarks.load import DSN, QUERY, STUB_URL

__all__ = ["app"]

app = Flask(__name__)
_handles: dict[str, Any] = {}


def _query(item: int) -> dict[str, Any]:
    connection = _handles.get("db")
    if connection is None:
        connection = _handles["db"] = psycopg.connect(DSN, autocommit=True)
    row = connection.execute(QUERY, (item,)).fetchone()
    assert row is not None
    return {"id": row[0], "name": row[1]}


@app.get("/plain")
def plain() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/db/<int:item>")
def db(item: int) -> dict[str, Any]:
    return _query(item)


@app.get("/chain")
def chain() -> dict[str, Any]:
    session = _handles.get("http")
    if session is None:
        session = _handles["http"] = requests.Session()
        session.trust_env = False
    session.get(STUB_URL, timeout=5).raise_for_status()
    return _query(7)
