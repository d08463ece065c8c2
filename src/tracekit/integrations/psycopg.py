"""psycopg 3: a CLIENT span for each ``execute`` and ``executemany``, sync and async, client- and server-side.

psycopg's cursor classes are pure Python, so their methods are wrapped in place: connections
and cursors stay the driver's own objects (``row_factory``, ``cursor_factory``, adapters,
pipelines, ``Connection.execute`` all work as before). ``executemany`` is one span with
``db.operation.batch.size``; a server-side cursor's ``execute`` (its ``DECLARE``) is a span.
"""

from __future__ import annotations

from typing import Any

from tracekit._db import Endpoint
from tracekit._dbapi import DbApi, Driver
from tracekit._patch import Patches, Plain

__all__ = ["DBAPI", "patch", "patches", "unpatch"]


def _endpoint(connection: Any) -> Endpoint:
    info = connection.info
    return Endpoint("postgresql", info.dbname or None, info.host or None, info.port or None)


def _statement(cursor: Any, query: Any) -> Any:
    if query is None or isinstance(query, (str, bytes)):
        return query
    as_string = getattr(query, "as_string", None)  # psycopg.sql.Composable
    return as_string(cursor) if as_string is not None else None


DBAPI = DbApi(
    Driver(
        "psycopg",
        endpoint=_endpoint,
        connection="_conn",
        statement=_statement,
    )
)

patches = Patches(
    "psycopg",
    {
        "psycopg": [
            ("Cursor.execute", Plain(DBAPI.execute)),
            ("Cursor.executemany", Plain(DBAPI.executemany)),
            ("ServerCursor.execute", Plain(DBAPI.execute)),
            ("AsyncCursor.execute", DBAPI.async_execute),
            ("AsyncCursor.executemany", DBAPI.async_executemany),
            ("AsyncServerCursor.execute", DBAPI.async_execute),
        ]
    },
)
patch = patches.apply
unpatch = patches.revert
