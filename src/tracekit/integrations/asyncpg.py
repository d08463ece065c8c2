"""asyncpg: a CLIENT span for each round trip a query makes.

``Connection.execute``, ``executemany``, ``fetch``, ``fetchval``, ``fetchrow``, ``fetchmany``
and the ``copy_*`` methods; the prepared statement's ``fetch*``, ``executemany`` and
``explain``; a cursor's bind and each fetch it sends to the server (iterating a cursor makes
one span per prefetched batch, not per row). Statements asyncpg runs for itself (type
introspection) are not traced. A pool's connections are the same ``Connection`` objects.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import Any

from tracekit._db import Args, Database, Endpoint, Kwargs, Request, async_wrapper
from tracekit._patch import Patches

__all__ = ["DATABASE", "patch", "patches", "unpatch"]

DATABASE = Database("asyncpg")


def _endpoint(connection: Any) -> Endpoint:
    # Connection has __slots__: read each call (two attribute reads).
    address = connection._addr
    database = getattr(connection._params, "database", None) or None
    if isinstance(address, tuple):
        return Endpoint("postgresql", database, str(address[0]), int(address[1]))
    return Endpoint("postgresql", database, str(address) if address else None)


def _query(connection: Any, args: Args, kwargs: Kwargs) -> Request:
    query = args[0] if args else kwargs.get("query")
    return Request(_endpoint(connection), query, parameters=args[1:] or None, where=0 if args else "query")


def _many(connection: Any, args: Args, kwargs: Kwargs) -> Request:
    query = args[0] if args else kwargs.get("command", kwargs.get("query"))
    sequence = args[1] if len(args) > 1 else kwargs.get("args")
    batch = len(sequence) if isinstance(sequence, Sized) else None
    return Request(_endpoint(connection), query, batch=batch, where=0 if args else None)


def _table(args: Args, kwargs: Kwargs) -> str:
    table = args[0] if args else kwargs["table_name"]
    schema = kwargs.get("schema_name")
    return f"{schema}.{table}" if schema else str(table)


def _copy_out(connection: Any, args: Args, kwargs: Kwargs) -> Request:
    return Request(_endpoint(connection), f"COPY {_table(args, kwargs)} TO STDOUT")


def _copy_in(connection: Any, args: Args, kwargs: Kwargs) -> Request:
    return Request(_endpoint(connection), f"COPY {_table(args, kwargs)} FROM STDIN")


def _copy_query(connection: Any, args: Args, kwargs: Kwargs) -> Request:
    query = args[0] if args else kwargs["query"]
    return Request(_endpoint(connection), f"COPY ({query}) TO STDOUT", parameters=args[1:] or None)


def _prepared(statement: Any, args: Args, kwargs: Kwargs) -> Request:
    return Request(_endpoint(statement._connection), statement._query, parameters=args or None)


def _prepared_many(statement: Any, args: Args, kwargs: Kwargs) -> Request:
    sequence = args[0] if args else kwargs.get("args")
    batch = len(sequence) if isinstance(sequence, Sized) else None
    return Request(_endpoint(statement._connection), statement._query, batch=batch)


def _explain(statement: Any, args: Args, kwargs: Kwargs) -> Request:
    return Request(_endpoint(statement._connection), f"EXPLAIN {statement._query}", parameters=args or None)


def _cursor(cursor: Any, args: Args, kwargs: Kwargs) -> Request:
    return Request(_endpoint(cursor._connection), cursor._query)


query = async_wrapper(DATABASE, _query)
many = async_wrapper(DATABASE, _many)
prepared = async_wrapper(DATABASE, _prepared)
prepared_many = async_wrapper(DATABASE, _prepared_many)
cursor = async_wrapper(DATABASE, _cursor)

patches = Patches(
    "asyncpg",
    {
        "asyncpg": [
            ("connection.Connection.execute", query),
            ("connection.Connection.fetch", query),
            ("connection.Connection.fetchval", query),
            ("connection.Connection.fetchrow", query),
            ("connection.Connection.executemany", many),
            ("connection.Connection.fetchmany", many),
            ("connection.Connection.copy_from_table", async_wrapper(DATABASE, _copy_out)),
            ("connection.Connection.copy_from_query", async_wrapper(DATABASE, _copy_query)),
            ("connection.Connection.copy_to_table", async_wrapper(DATABASE, _copy_in)),
            ("connection.Connection.copy_records_to_table", async_wrapper(DATABASE, _copy_in)),
            ("prepared_stmt.PreparedStatement.fetch", prepared),
            ("prepared_stmt.PreparedStatement.fetchval", prepared),
            ("prepared_stmt.PreparedStatement.fetchrow", prepared),
            ("prepared_stmt.PreparedStatement.fetchmany", prepared_many),
            ("prepared_stmt.PreparedStatement.executemany", prepared_many),
            ("prepared_stmt.PreparedStatement.explain", async_wrapper(DATABASE, _explain)),
            ("cursor.BaseCursor._bind_exec", cursor),
            ("cursor.BaseCursor._bind", cursor),
            ("cursor.BaseCursor._exec", cursor),
            ("cursor.Cursor.forward", cursor),
        ]
    },
)
patch = patches.apply
unpatch = patches.revert
