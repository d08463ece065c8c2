"""sqlite3, in memory and on disk: spans, transparency of the driver's objects, settings."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from dbcheck import check_db_span, exception_event

import tracekit
from tracekit import _state
from tracekit.testing import SpanRecorder, capture_spans

MEMORY = {"db.system.name": "sqlite", "db.namespace": ":memory:"}


def _select(
    summary: str, text: str, collection: str | None = None, operation: str = "SELECT"
) -> dict[str, Any]:
    attributes = {
        **MEMORY,
        "db.query.summary": summary,
        "db.operation.name": operation,
        "db.query.text": text,
    }
    if collection is not None:
        attributes["db.collection.name"] = collection
    return attributes


@pytest.fixture
def connection(spans: SpanRecorder) -> Any:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT UNIQUE, total REAL)")
    spans.clear()
    yield conn
    conn.close()


def test_execute_is_a_client_span_under_the_current_span(spans: SpanRecorder, connection: Any) -> None:
    with _state.tracer.start_as_current_span("request"):
        rows = connection.execute(
            "SELECT * FROM orders WHERE email = 'bob@example.com' AND id IN (1, 2)"
        ).fetchall()
    assert rows == []
    span, parent = spans.spans
    check_db_span(
        span,
        "SELECT orders",
        _select("SELECT orders", "SELECT * FROM orders WHERE email = ? AND id IN (?)", "orders"),
        parent=parent,
    )


def test_cursor_execute_executemany_and_executescript(spans: SpanRecorder, connection: Any) -> None:
    cursor = connection.cursor()
    cursor.executemany(
        "INSERT INTO orders (email, total) VALUES (?, ?)", [("a@x", 1.0), ("b@x", 2.0), ("c@x", 3.0)]
    )
    cursor.execute("SELECT count(*) FROM orders")
    assert cursor.fetchone() == (3,)
    cursor.executescript("UPDATE orders SET total = 0; DELETE FROM orders WHERE total = 0;")
    many, select, script = spans.spans
    check_db_span(
        many,
        "BATCH INSERT orders",
        {
            **MEMORY,
            "db.query.summary": "BATCH INSERT orders",
            "db.operation.name": "BATCH INSERT",
            "db.collection.name": "orders",
            "db.query.text": "INSERT INTO orders (email, total) VALUES (?, ?)",
            "db.operation.batch.size": 3,
        },
    )
    check_db_span(select, "SELECT orders", _select("SELECT orders", "SELECT count(*) FROM orders", "orders"))
    check_db_span(
        script,
        "UPDATE orders DELETE orders",
        {
            **MEMORY,
            "db.query.summary": "UPDATE orders DELETE orders",
            "db.collection.name": "orders",
            "db.query.text": "UPDATE orders SET total = ?; DELETE FROM orders WHERE total = ?;",
        },
    )


def test_a_one_row_executemany_is_not_a_batch(spans: SpanRecorder, connection: Any) -> None:
    connection.executemany("INSERT INTO orders (email) VALUES (?)", [("a@x",)])
    (span,) = spans.spans
    assert span.name == "INSERT orders"
    assert "db.operation.batch.size" not in (span.attributes or {})


def test_an_error_is_recorded_and_reraised_unchanged(spans: SpanRecorder, connection: Any) -> None:
    connection.execute("INSERT INTO orders (email) VALUES ('a@x')")
    with pytest.raises(sqlite3.IntegrityError) as raised:
        connection.execute("INSERT INTO orders (email) VALUES ('a@x')")
    assert raised.value.sqlite_errorname == "SQLITE_CONSTRAINT_UNIQUE"
    _, span = spans.spans
    check_db_span(
        span,
        "INSERT orders",
        {
            **MEMORY,
            "db.query.summary": "INSERT orders",
            "db.operation.name": "INSERT",
            "db.collection.name": "orders",
            "db.query.text": "INSERT INTO orders (email) VALUES (?)",
            "error.type": "sqlite3.IntegrityError",
            "db.response.status_code": "SQLITE_CONSTRAINT_UNIQUE",
        },
        error=True,
    )
    event = exception_event(span)
    assert event["exception.type"] == "sqlite3.IntegrityError"
    assert event["exception.message"] == "UNIQUE constraint failed: orders.email"


def test_the_driver_objects_stay_real(spans: SpanRecorder, connection: Any, tmp_path: Path) -> None:
    assert isinstance(connection, sqlite3.Connection)
    assert repr(connection).startswith("<sqlite3.Connection object")
    cursor = sqlite3.Cursor(connection)  # the C constructor checks the connection's type
    cursor.execute("SELECT 1")  # a cursor made without cursor() is the plain class: no span
    assert isinstance(connection.cursor(), sqlite3.Cursor)
    connection.row_factory = sqlite3.Row
    row = connection.execute("SELECT 7 AS seven").fetchone()
    assert row["seven"] == 7
    connection.commit()
    target = sqlite3.connect(tmp_path / "copy.db")
    connection.backup(target)  # needs a real sqlite3.Connection on both sides
    assert target.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == [("orders",)]
    with connection:  # a transaction context manager
        connection.execute("INSERT INTO orders (email) VALUES (?)", ("x@y",))
    assert [row[0] for row in connection.execute("SELECT email FROM orders")] == ["x@y"]
    names = [span.name for span in spans.spans]
    assert names == ["SELECT", "SELECT sqlite_master", "INSERT orders", "SELECT orders"]


class MyCursor(sqlite3.Cursor):
    def execute(self, *args: Any, **kwargs: Any) -> Any:
        self.seen = args[0]
        return super().execute(*args, **kwargs)


class MyConnection(sqlite3.Connection):
    marker = "mine"


def test_the_callers_factories_are_kept(spans: SpanRecorder, tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    conn = sqlite3.connect(path, factory=MyConnection)
    assert isinstance(conn, MyConnection)
    assert conn.marker == "mine"
    cursor = conn.cursor(MyCursor)
    assert isinstance(cursor, MyCursor)
    cursor.execute("SELECT 1")
    assert cursor.seen == "SELECT 1"
    conn.close()
    (span,) = spans.spans
    check_db_span(
        span,
        "SELECT",
        {
            "db.system.name": "sqlite",
            "db.namespace": str(path),
            "db.query.summary": "SELECT",
            "db.operation.name": "SELECT",
            "db.query.text": "SELECT ?",
        },
    )


def test_uninstrument_stops_spans_on_open_connections(spans: SpanRecorder, connection: Any) -> None:
    tracekit.uninstrument("sqlite3")
    connection.execute("SELECT 1")
    sqlite3.connect(":memory:").execute("SELECT 1")
    assert spans.spans == []
    tracekit.instrument("sqlite3")
    connection.execute("SELECT 1")
    assert [span.name for span in spans.spans] == ["SELECT"]


@pytest.mark.parametrize(("mode", "text"), [("raw", "SELECT 'secret' -- note"), ("off", None)])
def test_db_statement_setting(mode: str, text: str | None) -> None:
    with capture_spans(db_statement=mode) as recorder:
        sqlite3.connect(":memory:").execute("SELECT 'secret' -- note")
        (span,) = recorder.spans
    assert (span.attributes or {}).get("db.query.text") == text
    assert span.name == "SELECT"


def test_parameters_only_when_asked_for() -> None:
    with capture_spans(db_capture_parameters=True) as recorder:
        conn = sqlite3.connect(":memory:")
        conn.execute("SELECT ?, ?", (1, "two"))
        conn.execute("SELECT :a", {"a": 3})
        first, second = recorder.spans
    assert {k: v for k, v in (first.attributes or {}).items() if "parameter" in k} == {
        "db.operation.parameter.0": "1",
        "db.operation.parameter.1": "two",
    }
    assert (second.attributes or {})["db.operation.parameter.a"] == "3"


def test_database_dup_also_emits_the_old_names() -> None:
    with capture_spans(semconv_opt_in=["database/dup"]) as recorder:
        sqlite3.connect(":memory:").execute("SELECT * FROM sqlite_master WHERE name = 'x'")
        (span,) = recorder.spans
    attributes = dict(span.attributes or {})
    assert {
        k: attributes[k] for k in ("db.system", "db.name", "db.statement", "db.operation", "db.sql.table")
    } == {
        "db.system": "sqlite",
        "db.name": ":memory:",
        "db.statement": "SELECT * FROM sqlite_master WHERE name = ?",
        "db.operation": "SELECT",
        "db.sql.table": "sqlite_master",
    }


def test_sqlcommenter_appends_the_traceparent() -> None:
    sent: list[str] = []
    with capture_spans(sqlcommenter=True) as recorder:
        conn = sqlite3.connect(":memory:")
        conn.set_trace_callback(sent.append)
        conn.execute("SELECT 1")
        (span,) = recorder.spans
    context = span.context
    flags = int(context.trace_flags)
    assert sent == [
        f"SELECT 1 /*traceparent='00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}'*/"
    ]
    assert (span.attributes or {})["db.query.text"] == "SELECT ?"


def test_no_span_without_configure() -> None:
    tracekit.instrument("sqlite3")
    assert sqlite3.connect(":memory:").execute("SELECT 1").fetchone() == (1,)
