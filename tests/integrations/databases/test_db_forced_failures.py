"""Forced failures inside tracekit's database code never reach the caller nor change what it gets."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import psycopg
import psycopg2
import pymysql
import pytest
import redis

from tracekit import _db
from tracekit._tracer import Tracer
from tracekit.testing import SpanRecorder


def _fail(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("forced internal failure")


def _sqlite3(servers: Any, sql: str) -> Any:
    return sqlite3.connect(":memory:").execute(sql).fetchall()


def _psycopg2(servers: Any, sql: str) -> Any:
    with psycopg2.connect(servers["postgres"].dsn) as conn, conn.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def _psycopg(servers: Any, sql: str) -> Any:
    with psycopg.connect(servers["postgres"].dsn) as conn:
        return conn.execute(sql).fetchall()


def _pymysql(servers: Any, sql: str) -> Any:
    server = servers["mysql"]
    conn = pymysql.connect(
        host=server.host,
        port=server.port,
        user=server.user,
        password=server.password,
        database=server.database,
    )
    with conn.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def _redis(servers: Any, sql: str) -> Any:
    server = servers["redis"]
    client = redis.Redis(host=server.host, port=server.port)
    try:
        return client.execute_command("ECHO", sql) if "missing" not in sql else client.execute_command("NOPE")
    finally:
        client.close()


CLIENTS: dict[str, Callable[[Any, str], Any]] = {
    "sqlite3": _sqlite3,
    "psycopg2": _psycopg2,
    "psycopg": _psycopg,
    "pymysql": _pymysql,
    "redis": _redis,
}
ERRORS: dict[str, type[BaseException]] = {
    "sqlite3": sqlite3.OperationalError,
    "psycopg2": psycopg2.errors.UndefinedTable,
    "psycopg": psycopg.errors.UndefinedTable,
    "pymysql": pymysql.err.ProgrammingError,
    "redis": redis.ResponseError,
}


@pytest.fixture
def servers(request: pytest.FixtureRequest) -> dict[str, Any]:
    name = request.node.callspec.params["name"]
    needed = {"psycopg2": "postgres", "psycopg": "postgres", "pymysql": "mysql", "redis": "redis_server"}.get(
        name
    )
    if needed is None:
        return {}
    return {needed.replace("_server", ""): request.getfixturevalue(needed)}


#: Where a failure is forced on the way to a span: the statement's description (a statement
#: not seen before, since a known one is described from the cache), or tracekit's tracer.
STARTING_PARTS = {
    "description": (_db.Database, "_describe_span", "SELECT  42"),
    "tracer": (Tracer, "_build", "SELECT 42"),
}


@pytest.mark.parametrize("part", sorted(STARTING_PARTS))
@pytest.mark.parametrize("name", sorted(CLIENTS))
def test_a_failure_while_starting_the_span_leaves_the_result_unchanged(
    name: str,
    part: str,
    servers: dict[str, Any],
    spans: SpanRecorder,
    monkeypatch: pytest.MonkeyPatch,
    guarded_errors: list[tuple[str, BaseException]],
) -> None:
    expected = CLIENTS[name](servers, "SELECT 42")
    spans.clear()
    owner, attribute, again = STARTING_PARTS[part]
    monkeypatch.setattr(owner, attribute, _fail)
    # The same answer (redis has no statement cache: its command is sent as it is).
    assert CLIENTS[name](servers, "SELECT 42" if name == "redis" else again) == expected
    assert guarded_errors
    assert {(integration, str(exc)) for integration, exc in guarded_errors} == {
        (name, "forced internal failure")
    }
    guarded_errors.clear()
    assert [span for span in spans.spans if span.attributes.get("db.system.name")] == []  # type: ignore[union-attr]


@pytest.mark.parametrize("name", sorted(CLIENTS))
def test_a_failure_while_recording_an_error_reraises_the_original(
    name: str,
    servers: dict[str, Any],
    spans: SpanRecorder,
    monkeypatch: pytest.MonkeyPatch,
    guarded_errors: list[tuple[str, BaseException]],
) -> None:
    monkeypatch.setattr(_db, "qualified_name", _fail)
    with pytest.raises(ERRORS[name]):
        CLIENTS[name](servers, "SELECT * FROM missing_table")
    assert {integration for integration, _ in guarded_errors} == {name}
    guarded_errors.clear()
    failed = [
        span for span in spans.spans if span.status.status_code.name == "UNSET" and "missing" in span.name
    ]
    assert len(failed) <= 1  # the span still ended
