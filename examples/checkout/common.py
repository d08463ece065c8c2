"""What the three checkout services share: JSON log lines with trace ids, and the database.

Nothing here knows about tracing: the services run under ``tracekit run``, which configures
tracekit from the ``OTEL_*`` variables and adds ``trace_id``/``span_id`` to every log record.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
import time
from typing import Any

#: ``postgresql`` conninfo (``host=... dbname=...``) or ``sqlite:///path``; set by run_demo.py.
DATABASE_URL = os.environ.get("CHECKOUT_DATABASE_URL", "sqlite:///checkout.sqlite3")


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the ids of the span that was current when it was logged."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}",
            "level": record.levelname,
            "service": os.environ.get("OTEL_SERVICE_NAME", ""),
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": getattr(record, "trace_id", ""),
            "span_id": getattr(record, "span_id", ""),
        }
        return json.dumps(line)


def setup_logging(name: str) -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    return logging.getLogger(name)


def connect() -> Any:
    """A DB-API connection in autocommit mode: psycopg for PostgreSQL, else sqlite3."""
    if DATABASE_URL.startswith("sqlite:///"):
        return sqlite3.connect(DATABASE_URL.removeprefix("sqlite:///"), isolation_level=None)
    import psycopg

    return psycopg.connect(DATABASE_URL, autocommit=True)


def sql(statement: str) -> str:
    """``statement`` with ``%s`` placeholders, in the driver's parameter style."""
    return statement.replace("%s", "?") if DATABASE_URL.startswith("sqlite:///") else statement
