"""PyMySQL against the machine's MariaDB."""

from __future__ import annotations

import uuid
from typing import Any

import pymysql
import pymysql.cursors
import pytest
from dbcheck import check_db_span

from tracekit import _state
from tracekit.testing import SpanRecorder


def _connect(server: Any, **extra: Any) -> Any:
    return pymysql.connect(
        host=server.host,
        port=server.port,
        user=server.user,
        password=server.password,
        database=server.database,
        **extra,
    )


def _attributes(server: Any, system: str, **extra: Any) -> dict[str, Any]:
    return {
        "db.system.name": system,
        "db.namespace": server.database,
        "server.address": server.host,
        "server.port": server.port,
        **extra,
    }


@pytest.fixture
def connection(mysql: Any) -> Any:
    conn = _connect(mysql)
    yield conn
    conn.close()


def _system(conn: Any) -> str:
    return "mariadb" if "mariadb" in conn.server_version.lower() else "mysql"


def test_execute_executemany_and_errors(spans: SpanRecorder, mysql: Any, connection: Any) -> None:
    table = f"orders_{uuid.uuid4().hex[:8]}"
    system = _system(connection)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE {table} (id int PRIMARY KEY, email varchar(50))")
        spans.clear()
        with _state.tracer.start_as_current_span("request"):
            # One span, although PyMySQL sends the rows as one multi-row INSERT of its own.
            cursor.executemany(f"INSERT INTO {table} (id, email) VALUES (%s, %s)", [(1, "a@x"), (2, "b@x")])
            cursor.execute(f"SELECT email FROM {table} WHERE id IN (1, 2) AND email <> 'secret'")
            assert sorted(row[0] for row in cursor.fetchall()) == ["a@x", "b@x"]
            with pytest.raises(pymysql.err.IntegrityError):
                cursor.execute(f"INSERT INTO {table} (id, email) VALUES (1, 'dup')")
    many, select, failed, parent = spans.spans
    check_db_span(
        many,
        f"BATCH INSERT {table}",
        _attributes(
            mysql,
            system,
            **{
                "db.query.summary": f"BATCH INSERT {table}",
                "db.operation.name": "BATCH INSERT",
                "db.collection.name": table,
                "db.query.text": f"INSERT INTO {table} (id, email) VALUES (%s, %s)",
                "db.operation.batch.size": 2,
            },
        ),
        parent=parent,
    )
    check_db_span(
        select,
        f"SELECT {table}",
        _attributes(
            mysql,
            system,
            **{
                "db.query.summary": f"SELECT {table}",
                "db.operation.name": "SELECT",
                "db.collection.name": table,
                "db.query.text": f"SELECT email FROM {table} WHERE id IN (?) AND email <> ?",
            },
        ),
        parent=parent,
    )
    check_db_span(
        failed,
        f"INSERT {table}",
        _attributes(
            mysql,
            system,
            **{
                "db.query.summary": f"INSERT {table}",
                "db.operation.name": "INSERT",
                "db.collection.name": table,
                "db.query.text": f"INSERT INTO {table} (id, email) VALUES (?, ?)",
                "error.type": "pymysql.err.IntegrityError",
                "db.response.status_code": "1062",
            },
        ),
        parent=parent,
        error=True,
    )


def test_cursor_classes_and_transactions(spans: SpanRecorder, mysql: Any) -> None:
    conn = _connect(mysql, cursorclass=pymysql.cursors.DictCursor)
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1 AS one")
        assert cursor.fetchone() == {"one": 1}
    with conn.cursor(pymysql.cursors.SSCursor) as cursor:
        cursor.execute("SELECT 2")
        assert list(cursor.fetchall()) == [(2,)]
    conn.begin()
    with conn.cursor() as cursor:
        cursor.execute("SELECT 3")
    conn.rollback()
    with pytest.raises(pymysql.err.ProgrammingError):
        conn.cursor().execute("SELECT * FROM no_such_table")
    conn.close()
    names = [span.name for span in spans.spans]
    assert names == ["SELECT", "SELECT", "SELECT", "SELECT no_such_table"]
    assert spans.spans[-1].attributes["db.response.status_code"] == "1146"  # type: ignore[index]
