"""psycopg2 and psycopg 3 (sync and async) against the machine's PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import psycopg2
import psycopg2.extensions
import psycopg2.extras
import pytest
from dbcheck import check_db_span, exception_event
from psycopg import sql
from psycopg.rows import dict_row

from tracekit import _state
from tracekit.testing import SpanRecorder, capture_spans


def _pg(server: Any, **extra: Any) -> dict[str, Any]:
    return {
        "db.system.name": "postgresql",
        "db.namespace": server.database,
        "server.address": server.host,
        "server.port": server.port,
        **extra,
    }


def _query(
    server: Any, summary: str, text: str, operation: str | None, collection: str | None
) -> dict[str, Any]:
    attributes = _pg(server, **{"db.query.summary": summary, "db.query.text": text})
    if operation is not None:
        attributes["db.operation.name"] = operation
    if collection is not None:
        attributes["db.collection.name"] = collection
    return attributes


@pytest.fixture
def table(postgres: Any) -> str:
    name = f"orders_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (id serial PRIMARY KEY, email text UNIQUE, total int)")
    yield name
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")


# --------------------------------------------------------------------------- psycopg2


def test_psycopg2_execute_under_a_request_span(spans: SpanRecorder, postgres: Any, table: str) -> None:
    conn = psycopg2.connect(postgres.dsn)
    spans.clear()
    with _state.tracer.start_as_current_span("request"), conn.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE email = 'bob@example.com' AND total > %s", (10,))
        assert cursor.fetchall() == []
    conn.close()
    span, parent = spans.spans
    check_db_span(
        span,
        f"SELECT {table}",
        _query(
            postgres,
            f"SELECT {table}",
            f"SELECT * FROM {table} WHERE email = ? AND total > %s",
            "SELECT",
            table,
        ),
        parent=parent,
    )


def test_psycopg2_extras_need_the_real_connection(spans: SpanRecorder, postgres: Any, table: str) -> None:
    conn = psycopg2.connect(postgres.dsn)
    assert type(conn) is not psycopg2.extensions.connection  # a subclass, not a proxy
    assert isinstance(conn, psycopg2.extensions.connection)
    psycopg2.extensions.register_type(psycopg2.extensions.UNICODE, conn)  # C-level type check
    psycopg2.extras.register_uuid(conn_or_curs=conn)
    psycopg2.extras.register_default_jsonb(conn)
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
        cursor.execute("SELECT 1 AS one, %s::uuid AS id", (uuid.UUID(int=1),))
        assert cursor.fetchone() == {"one": 1, "id": uuid.UUID(int=1)}
        assert isinstance(cursor, psycopg2.extras.RealDictCursor)
    conn.cursor_factory = psycopg2.extras.NamedTupleCursor
    with conn.cursor() as cursor:
        cursor.execute("SELECT 2 AS two")
        assert cursor.fetchone().two == 2
    spans.clear()
    with conn.cursor() as cursor:
        psycopg2.extras.execute_values(
            cursor, f"INSERT INTO {table} (email, total) VALUES %s", [("a", 1), ("b", 2)]
        )
        cursor.executemany(f"UPDATE {table} SET total = %s WHERE email = %s", [(3, "a"), (4, "b")])
    conn.commit()
    values, many = spans.spans
    # execute_values inlines the values: the sanitizer takes them out again.
    assert values.name == f"INSERT {table}"
    assert (values.attributes or {})[
        "db.query.text"
    ] == f"INSERT INTO {table} (email, total) VALUES (?,?),(?,?)"
    check_db_span(
        many,
        f"BATCH UPDATE {table}",
        _query(
            postgres,
            f"BATCH UPDATE {table}",
            f"UPDATE {table} SET total = %s WHERE email = %s",
            "BATCH UPDATE",
            table,
        )
        | {"db.operation.batch.size": 2},
    )
    conn.close()


def test_psycopg2_named_cursor_and_errors(spans: SpanRecorder, postgres: Any, table: str) -> None:
    conn = psycopg2.connect(postgres.dsn)
    spans.clear()
    with conn.cursor("server_side") as cursor:
        cursor.execute("SELECT generate_series(1, 10)")
        assert [row[0] for row in cursor.fetchmany(3)] == [1, 2, 3]
    with conn.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} (email) VALUES ('a')")
        with pytest.raises(psycopg2.errors.UniqueViolation):
            cursor.execute(f"INSERT INTO {table} (email) VALUES ('a')")
    conn.rollback()
    conn.close()
    named, _, failed = spans.spans
    assert named.name == "SELECT"
    assert (named.attributes or {})["db.query.text"] == "SELECT generate_series(?, ?)"
    check_db_span(
        failed,
        f"INSERT {table}",
        _query(postgres, f"INSERT {table}", f"INSERT INTO {table} (email) VALUES (?)", "INSERT", table)
        | {"error.type": "psycopg2.errors.UniqueViolation", "db.response.status_code": "23505"},
        error=True,
    )
    assert exception_event(failed)["exception.type"] == "psycopg2.errors.UniqueViolation"


def test_psycopg2_sqlcommenter(postgres: Any) -> None:
    with capture_spans(sqlcommenter=True) as recorder:
        conn = psycopg2.connect(postgres.dsn)
        with conn.cursor() as cursor:
            cursor.execute("SELECT %s", (1,))
            sent = cursor.query
        conn.close()
        (span,) = recorder.spans
    context = span.context
    traceparent = f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
    assert sent == f"SELECT 1 /*traceparent='{traceparent}'*/".encode()


# --------------------------------------------------------------------------- psycopg 3


def test_psycopg_sync(spans: SpanRecorder, postgres: Any, table: str) -> None:
    with psycopg.connect(postgres.dsn, row_factory=dict_row) as conn:
        spans.clear()
        row = conn.execute("SELECT %s::int AS n", (5,)).fetchone()
        assert row == {"n": 5}
        with conn.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {table} (email) VALUES (%s)", [("a",), ("b",), ("c",)])
            cursor.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(table)))
            assert cursor.fetchone() == {"n": 3}
        with conn.cursor(name="server_side") as cursor:
            cursor.execute(f"SELECT email FROM {table} ORDER BY email")
            assert [r["email"] for r in cursor.fetchmany(2)] == ["a", "b"]
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM missing_table")
    select, many, composed, named, failed = spans.spans
    check_db_span(select, "SELECT", _query(postgres, "SELECT", "SELECT %s::int AS n", "SELECT", None))
    check_db_span(
        many,
        f"BATCH INSERT {table}",
        _query(
            postgres,
            f"BATCH INSERT {table}",
            f"INSERT INTO {table} (email) VALUES (%s)",
            "BATCH INSERT",
            table,
        )
        | {"db.operation.batch.size": 3},
    )
    assert (composed.attributes or {})["db.query.text"] == f'SELECT count(*) AS n FROM "{table}"'
    assert composed.name == f'SELECT "{table}"'
    assert named.name == f"SELECT {table}"
    check_db_span(
        failed,
        "SELECT missing_table",
        _query(postgres, "SELECT missing_table", "SELECT * FROM missing_table", "SELECT", "missing_table")
        | {"error.type": "psycopg.errors.UndefinedTable", "db.response.status_code": "42P01"},
        error=True,
    )


def test_psycopg_async(spans: SpanRecorder, postgres: Any) -> None:
    async def main() -> list[Any]:
        async with await psycopg.AsyncConnection.connect(postgres.dsn) as conn:
            with _state.tracer.start_as_current_span("request"):
                async with conn.cursor() as cursor:
                    await cursor.execute("SELECT 1")
                    first = await cursor.fetchall()
                async with conn.cursor(name="async_server_side") as cursor:
                    await cursor.execute("SELECT generate_series(1, 3)")
                    rest = await cursor.fetchall()
            return [first, rest]

    assert asyncio.run(main()) == [[(1,)], [(1,), (2,), (3,)]]
    first, named, parent = spans.spans
    check_db_span(first, "SELECT", _query(postgres, "SELECT", "SELECT ?", "SELECT", None), parent=parent)
    check_db_span(
        named,
        "SELECT",
        _query(postgres, "SELECT", "SELECT generate_series(?, ?)", "SELECT", None),
        parent=parent,
    )
