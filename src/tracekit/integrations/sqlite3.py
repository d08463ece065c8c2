"""sqlite3: a CLIENT span for each ``execute``, ``executemany`` and ``executescript``, on disk or in memory.

``sqlite3.Connection`` and ``sqlite3.Cursor`` are C types, so ``sqlite3.connect`` is wrapped
to pass a ``factory``: a subclass of the connection class asked for (``sqlite3.Connection``
or the caller's own factory) whose ``cursor()`` returns a subclass of the cursor class asked
for. Connections stay real ``sqlite3.Connection`` objects (``backup()``, ``Cursor(conn)``
and ``row_factory`` work as before). ``db.namespace`` is the ``database`` argument given to
``connect`` (a path, a ``file:`` URI or ``:memory:``).
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

from tracekit._db import Args, Endpoint, Kwargs
from tracekit._dbapi import DbApi, Driver, disguise, remember_endpoint, switches, traced_class, traced_type
from tracekit._patch import Patches
from tracekit._safety import report

__all__ = ["DBAPI", "patch", "patches", "unpatch"]

SYSTEM = "sqlite"

DBAPI = DbApi(Driver("sqlite3", endpoint=lambda connection: Endpoint(SYSTEM)))

_connection_classes: dict[type, type] = {}
_cursor_classes: dict[type, type] = {}
_traced: dict[str, type] = {}


def _classes(sqlite3: ModuleType) -> tuple[type, type]:
    """The traced connection and cursor classes (made once, when sqlite3 is first patched)."""
    if not _traced:
        cursor_class = traced_type(
            DBAPI,
            sqlite3.Cursor,
            {
                "execute": DBAPI.execute,
                "executemany": DBAPI.executemany,
                "executescript": DBAPI.executescript,
            },
        )

        class Connection(sqlite3.Connection):  # type: ignore[misc, name-defined]
            def cursor(self, *args: Any, **kwargs: Any) -> Any:
                if DBAPI.enabled:
                    if not args and not kwargs:  # cursor(): the driver's own cursor class
                        return super().cursor(cursor_class)
                    factory = args[0] if args else kwargs.get("factory", sqlite3.Cursor)
                    if isinstance(factory, type) and issubclass(factory, sqlite3.Cursor):
                        return super().cursor(traced_class(factory, cursor_class, _cursor_classes))
                return super().cursor(*args, **kwargs)

            # The shortcuts create a cursor with cursor(), as the documentation describes them.
            def execute(self, *args: Any, **kwargs: Any) -> Any:
                if DBAPI.enabled:
                    return self.cursor().execute(*args, **kwargs)
                return super().execute(*args, **kwargs)

            def executemany(self, *args: Any, **kwargs: Any) -> Any:
                if DBAPI.enabled:
                    return self.cursor().executemany(*args, **kwargs)
                return super().executemany(*args, **kwargs)

            def executescript(self, *args: Any, **kwargs: Any) -> Any:
                if DBAPI.enabled:
                    return self.cursor().executescript(*args, **kwargs)
                return super().executescript(*args, **kwargs)

        _traced["connection"] = disguise(Connection, sqlite3.Connection)
        _traced["cursor"] = cursor_class
    return _traced["connection"], _traced["cursor"]


_FACTORY_POSITION = 5  # connect(database, timeout, detect_types, isolation_level, check_same_thread, factory)


def _connect(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    traced = None
    database = args[0] if args else kwargs.get("database")
    try:
        import sqlite3

        connection_class, _ = _classes(sqlite3)
        if len(args) > _FACTORY_POSITION:
            factory = args[_FACTORY_POSITION]
        else:
            factory = kwargs.get("factory", sqlite3.Connection)
        if isinstance(factory, type) and issubclass(factory, sqlite3.Connection):
            traced = traced_class(factory, connection_class, _connection_classes)
            if len(args) > _FACTORY_POSITION:
                args = (*args[:_FACTORY_POSITION], traced, *args[_FACTORY_POSITION + 1 :])
            else:
                kwargs = {**kwargs, "factory": traced}
    except Exception as exc:
        report("sqlite3", exc)
    connection = wrapped(*args, **kwargs)
    if traced is not None and isinstance(connection, traced):
        try:
            namespace = os.fsdecode(database) if isinstance(database, (str, bytes, os.PathLike)) else None
            remember_endpoint(connection, Endpoint(SYSTEM, namespace))
        except Exception as exc:
            report("sqlite3", exc)
    return connection


patches = Patches("sqlite3", {"sqlite3": [("connect", _connect), ("dbapi2.connect", _connect)]})
patch, unpatch = switches(patches, DBAPI)
