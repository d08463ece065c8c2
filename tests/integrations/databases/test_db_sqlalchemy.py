"""SQLAlchemy over each DB-API driver, sync and asyncio engines: one span per statement, never two."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from dbcheck import check_db_span
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from tracekit import _state
from tracekit.testing import SpanRecorder


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = f"sa_orders_{uuid.uuid4().hex[:8]}"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(50))


TABLE = Order.__tablename__


@pytest.fixture(params=["sqlite", "postgresql+psycopg2", "postgresql+psycopg", "mysql+pymysql"])
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[tuple[sa.Engine, dict[str, Any]]]:
    if request.param == "sqlite":
        path = tmp_path / "orders.db"
        endpoint: dict[str, Any] = {"db.system.name": "sqlite", "db.namespace": str(path)}
        url = f"sqlite:///{path}"
    else:
        server = request.getfixturevalue("mysql" if "mysql" in request.param else "postgres")
        url = server.url(request.param)
        system = "postgresql" if "postgresql" in request.param else "mariadb"
        endpoint = {
            "db.system.name": system,
            "db.namespace": server.database,
            "server.address": server.host,
            "server.port": server.port,
        }
    engine = sa.create_engine(url)
    Base.metadata.create_all(engine)
    yield engine, endpoint
    Base.metadata.drop_all(engine)
    engine.dispose()


def test_one_span_per_statement_with_the_driver_instrumented_too(
    spans: SpanRecorder, engine: tuple[sa.Engine, dict[str, Any]]
) -> None:
    db, endpoint = engine
    if endpoint["db.system.name"] == "mariadb":
        with db.connect():
            endpoint["db.system.name"] = "mariadb" if db.dialect.is_mariadb else "mysql"
    spans.clear()
    with _state.tracer.start_as_current_span("request"), Session(db) as session:
        session.add_all([Order(id=1, email="a@x"), Order(id=2, email="b@x")])
        session.commit()
        found = session.scalars(sa.select(Order).where(Order.email == "b@x")).all()
        assert [order.id for order in found] == [2]
        with pytest.raises(sa.exc.IntegrityError):
            session.execute(sa.text(f"INSERT INTO {TABLE} (id, email) VALUES (1, 'dup')"))
        session.rollback()
    *children, parent = spans.spans
    statements = [span for span in children if span.name not in ("BEGIN", "COMMIT", "ROLLBACK")]
    # Each statement is exactly one span, made by the SQLAlchemy layer (no driver span under it).
    assert [span.name for span in statements] == [
        f"BATCH INSERT {TABLE}",
        f"SELECT {TABLE}",
        f"INSERT {TABLE}",
    ]
    for span in children:
        assert span.parent is not None
        assert span.parent.span_id == parent.context.span_id
    insert, select, failed = statements
    assert insert.attributes["db.operation.batch.size"] == 2  # type: ignore[index]
    text = select.attributes["db.query.text"]  # type: ignore[index]
    assert text.startswith(f"SELECT {TABLE}.id, {TABLE}.email \nFROM {TABLE} \nWHERE {TABLE}.email = ")
    error_attributes = dict(failed.attributes or {})
    expected_code = {"sqlite": "SQLITE_CONSTRAINT_PRIMARYKEY", "postgresql": "23505"}.get(
        endpoint["db.system.name"], "1062"
    )
    check_db_span(
        failed,
        f"INSERT {TABLE}",
        {
            **endpoint,
            "db.query.summary": f"INSERT {TABLE}",
            "db.operation.name": "INSERT",
            "db.collection.name": TABLE,
            "db.query.text": f"INSERT INTO {TABLE} (id, email) VALUES (?, ?)",
            "error.type": error_attributes["error.type"],
            "db.response.status_code": expected_code,
        },
        parent=parent,
        error=True,
    )
    assert error_attributes["error.type"].split(".")[0] in ("sqlite3", "psycopg2", "psycopg", "pymysql")


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
def test_async_engine_one_span_per_statement(spans: SpanRecorder, postgres: Any, driver: str) -> None:
    async def main() -> int:
        engine = create_async_engine(postgres.url(f"postgresql+{driver}"))
        try:
            with _state.tracer.start_as_current_span("request"):
                async with engine.connect() as conn:
                    result = await conn.execute(sa.text("SELECT 40 + :n"), {"n": 2})
                    value = int(result.scalar_one())
                    with pytest.raises(sa.exc.ProgrammingError):
                        await conn.execute(sa.text("SELECT * FROM no_such_table"))
            return value
        finally:
            await engine.dispose()

    assert asyncio.run(main()) == 42
    *children, parent = spans.spans
    statements = [span for span in children if span.name in ("SELECT", "SELECT no_such_table")]
    first, failed = statements[-2:]
    check_db_span(
        first,
        "SELECT",
        {
            "db.system.name": "postgresql",
            "db.namespace": postgres.database,
            "server.address": postgres.host,
            "server.port": postgres.port,
            "db.query.summary": "SELECT",
            "db.operation.name": "SELECT",
            "db.query.text": first.attributes["db.query.text"],  # type: ignore[index]
        },
        parent=parent,
    )
    assert first.attributes["db.query.text"] in ("SELECT ? + $1", "SELECT ? + %(n)s")  # type: ignore[index]
    assert failed.attributes["db.response.status_code"] == "42P01"  # type: ignore[index]
    # No driver span under the SQLAlchemy span: every span is a child of the request span.
    assert {span.parent.span_id for span in children if span.parent} == {parent.context.span_id}


def _traceparent(span: Any) -> str:
    context = span.context
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_sqlcommenter_reaches_the_server(postgres: Any, driver: str) -> None:
    """PostgreSQL itself reports the statement it is running, comment included."""
    from tracekit.testing import capture_spans

    engine = sa.create_engine(postgres.url(f"postgresql+{driver}"))
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    try:
        with capture_spans(sqlcommenter=True) as recorder, engine.connect() as conn:
            running = conn.execute(sa.text("SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()"))
            reported = running.scalar_one()
            conn.execute(sa.text("SELECT :n"), [{"n": 1}, {"n": 2}])
    finally:
        engine.dispose()
    first, batch = recorder.spans[-2:]
    assert first.name == "SELECT pg_stat_activity"
    expected = (
        "SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid() "
        f"/*traceparent='{_traceparent(first)}'*/"
    )
    assert reported == expected
    assert seen[-2:] == [expected, f"SELECT %(n)s /*traceparent='{_traceparent(batch)}'*/"]
    # The text recorded on the span is the statement without the comment.
    assert "traceparent" not in str(first.attributes["db.query.text"])  # type: ignore[index]


def test_no_comment_without_sqlcommenter(spans: SpanRecorder, postgres: Any) -> None:
    engine = sa.create_engine(postgres.url("postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            reported = conn.execute(
                sa.text("SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()")
            ).scalar_one()
    finally:
        engine.dispose()
    assert reported == "SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()"
