"""asyncpg against the machine's PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from dbcheck import check_db_span

from tracekit import _state
from tracekit.testing import SpanRecorder


def _attributes(server: Any, **extra: Any) -> dict[str, Any]:
    return {
        "db.system.name": "postgresql",
        "db.namespace": server.database,
        "server.address": server.host,
        "server.port": server.port,
        **extra,
    }


def test_queries_prepared_statements_cursors_and_copy(spans: SpanRecorder, postgres: Any) -> None:
    async def main() -> None:
        conn = await asyncpg.connect(postgres.url("postgresql"))
        try:
            with _state.tracer.start_as_current_span("request"):
                assert await conn.fetchval("SELECT $1::int + 1", 1) == 2
                await conn.execute("CREATE TEMPORARY TABLE t (a int)")
                await conn.executemany("INSERT INTO t VALUES ($1)", [(1,), (2,), (3,)])
                statement = await conn.prepare("SELECT a FROM t WHERE a > $1 ORDER BY a")
                assert [r["a"] for r in await statement.fetch(1)] == [2, 3]
                await conn.copy_records_to_table("t", records=[(4,), (5,)])
                async with conn.transaction():
                    seen = [r["a"] async for r in conn.cursor("SELECT a FROM t ORDER BY a", prefetch=3)]
                assert seen == [1, 2, 3, 4, 5]
                try:
                    await conn.fetch("SELECT * FROM no_such_table")
                except asyncpg.UndefinedTableError:
                    pass
                else:
                    raise AssertionError("no error")
        finally:
            await conn.close()

    asyncio.run(main())
    *children, parent = spans.spans
    for child in children:
        assert child.parent is not None
        assert child.parent.span_id == parent.context.span_id
    names = [span.name for span in children]
    assert names == [
        "SELECT",
        "CREATE TABLE t",
        "BATCH INSERT t",
        "SELECT t",
        "COPY t",
        "BEGIN",
        "SELECT t",  # bind + first 3 rows
        "SELECT t",  # next 3 rows (2 left: exhausted)
        "COMMIT",
        "SELECT no_such_table",
    ]
    check_db_span(
        children[0],
        "SELECT",
        _attributes(
            postgres,
            **{
                "db.query.summary": "SELECT",
                "db.operation.name": "SELECT",
                "db.query.text": "SELECT $1::int + ?",
            },
        ),
        parent=parent,
    )
    assert children[2].attributes["db.operation.batch.size"] == 3  # type: ignore[index]
    assert children[4].attributes["db.query.text"] == "COPY t FROM STDIN"  # type: ignore[index]
    check_db_span(
        children[-1],
        "SELECT no_such_table",
        _attributes(
            postgres,
            **{
                "db.query.summary": "SELECT no_such_table",
                "db.operation.name": "SELECT",
                "db.collection.name": "no_such_table",
                "db.query.text": "SELECT * FROM no_such_table",
                "error.type": "asyncpg.exceptions.UndefinedTableError",
                "db.response.status_code": "42P01",
            },
        ),
        parent=parent,
        error=True,
    )


def test_pool_connections_are_traced(spans: SpanRecorder, postgres: Any) -> None:
    async def main() -> int:
        async with (
            asyncpg.create_pool(postgres.url("postgresql"), min_size=1, max_size=1) as pool,
            pool.acquire() as conn,
        ):
            return int(await conn.fetchval("SELECT 41 + 1"))

    assert asyncio.run(main()) == 42
    # Releasing the connection resets it: a real round trip, so a span too.
    assert [span.name for span in spans.spans] == ["SELECT", "SELECT CLOSE UNLISTEN RESET"]
