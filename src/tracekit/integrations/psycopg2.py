"""psycopg2: a CLIENT span for each ``execute``, ``executemany``, ``callproc`` and ``copy_expert``.

psycopg2's connection and cursor are C types that its own C code checks for (``register_type``,
the ``extras`` registrations), so no proxy may stand in for them. ``psycopg2.connect`` is
wrapped to pass a ``connection_factory``: a subclass of ``extensions.connection`` (or of the
caller's factory, such as ``extras.LoggingConnection``) whose ``cursor()`` hands out a
subclass of the cursor class asked for (``cursor_factory`` argument, the connection's
``cursor_factory``, or ``extensions.cursor``). ``RealDictCursor``, named server-side cursors
and ``extras.execute_values`` work as before; each round trip they make is a span.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from tracekit._db import Args, Kwargs
from tracekit._dbapi import (
    DbApi,
    Driver,
    disguise,
    libpq_endpoint,
    libpq_statement,
    switches,
    traced_class,
    traced_type,
)
from tracekit._patch import Patches
from tracekit._safety import report

__all__ = ["DBAPI", "patch", "patches", "unpatch"]


DBAPI = DbApi(Driver("psycopg2", endpoint=libpq_endpoint, statement=libpq_statement))

_connection_classes: dict[type, type] = {}
_cursor_classes: dict[type, type] = {}
_traced: dict[str, type] = {}


def _classes(extensions: ModuleType) -> tuple[type, type]:
    """The traced connection and cursor classes (made once, when psycopg2 is first patched)."""
    if not _traced:
        cursor_class = traced_type(
            DBAPI,
            extensions.cursor,
            {
                "execute": DBAPI.execute,
                "executemany": DBAPI.executemany,
                "callproc": DBAPI.callproc,
                "copy_expert": DBAPI.execute,
            },
        )

        class Connection(extensions.connection):  # type: ignore[misc, name-defined]
            def cursor(self, *args: Any, **kwargs: Any) -> Any:
                # cursor(name=None, cursor_factory=None, withhold=False, scrollable=None)
                if DBAPI.enabled:
                    positional = len(args) > 1
                    factory = (
                        (args[1] if positional else kwargs.get("cursor_factory"))
                        or self.cursor_factory
                        or extensions.cursor
                    )
                    if isinstance(factory, type) and issubclass(factory, extensions.cursor):
                        traced = traced_class(factory, cursor_class, _cursor_classes)
                        if positional:
                            args = (args[0], traced, *args[2:])
                        else:
                            kwargs["cursor_factory"] = traced
                return super().cursor(*args, **kwargs)

        _traced["connection"] = disguise(Connection, extensions.connection)
        _traced["cursor"] = cursor_class
    return _traced["connection"], _traced["cursor"]


def _connect(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    # connect(dsn=None, connection_factory=None, cursor_factory=None, **kwargs)
    try:
        extensions = importlib.import_module("psycopg2.extensions")
        connection_class, _ = _classes(extensions)
        positional = len(args) > 1
        factory = (args[1] if positional else kwargs.get("connection_factory")) or extensions.connection
        if isinstance(factory, type) and issubclass(factory, extensions.connection):
            traced = traced_class(factory, connection_class, _connection_classes)
            if positional:
                args = (args[0], traced, *args[2:])
            else:
                kwargs = {**kwargs, "connection_factory": traced}
    except Exception as exc:
        report("psycopg2", exc)
    return wrapped(*args, **kwargs)


patches = Patches("psycopg2", {"psycopg2": [("connect", _connect)]})
patch, unpatch = switches(patches, DBAPI)
