"""PyMySQL: a CLIENT span for each ``execute``, ``executemany`` and ``callproc``.

PyMySQL's cursors are pure Python, so ``pymysql.cursors.Cursor``'s methods are wrapped in
place (``DictCursor``, ``SSCursor`` and the caller's ``cursorclass`` inherit them).
``executemany`` is one span even where PyMySQL sends several multi-row statements.
``db.system.name`` is ``mariadb`` when the server says it is MariaDB, else ``mysql``.
"""

from __future__ import annotations

from typing import Any

from tracekit._db import Endpoint
from tracekit._dbapi import DbApi, Driver
from tracekit._patch import Patches, Plain

__all__ = ["DBAPI", "patch", "patches", "unpatch"]


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) and value else None


def _endpoint(connection: Any) -> Endpoint:
    version = getattr(connection, "server_version", None) or ""
    system = "mariadb" if "mariadb" in version.lower() else "mysql"
    socket = getattr(connection, "unix_socket", None)
    if socket:
        return Endpoint(system, _text(connection.db), str(socket))
    return Endpoint(system, _text(connection.db), connection.host, connection.port)


# The database can change (select_db), and reading it is cheap: the endpoint is read each call.
DBAPI = DbApi(Driver("pymysql", endpoint=_endpoint, cache_endpoint=False))

patches = Patches(
    "pymysql",
    {
        "pymysql": [
            ("cursors.Cursor.execute", Plain(DBAPI.execute)),
            ("cursors.Cursor.executemany", Plain(DBAPI.executemany)),
            ("cursors.Cursor.callproc", Plain(DBAPI.callproc)),
        ]
    },
)
patch = patches.apply
unpatch = patches.revert
