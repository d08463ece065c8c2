"""psycopg 3: a CLIENT span for each ``execute`` and ``executemany``, sync and async, client- and server-side.

psycopg's cursor classes are pure Python, so their methods are wrapped in place: connections
and cursors stay the driver's own objects (``row_factory``, ``cursor_factory``, adapters,
pipelines, ``Connection.execute`` all work as before). ``executemany`` is one span with
``db.operation.batch.size``; a server-side cursor's ``execute`` (its ``DECLARE``) is a span.
"""

from __future__ import annotations

from tracekit._dbapi import DbApi, Driver, libpq_endpoint, libpq_statement
from tracekit._patch import Patches, Plain

__all__ = ["DBAPI", "patch", "patches", "unpatch"]

DBAPI = DbApi(Driver("psycopg", endpoint=libpq_endpoint, connection="_conn", statement=libpq_statement))

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
