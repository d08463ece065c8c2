"""The DB-API (PEP 249) family: one span per ``execute``, ``executemany``, ``callproc``, ``executescript``.

A driver integration describes its library as data, a :class:`Driver`: how to read the
endpoint (system, database, host, port) from a connection, how to reach the connection from
a cursor, how to turn a query object into text, how to read the database's error code. From
it a :class:`DbApi` makes the cursor wrappers, sync and async, all built on
:mod:`tracekit._db`, so every driver gets the same spans.

How the wrappers reach the cursor depends on the driver, and is chosen so that the driver's
objects stay exactly what they are (no proxy object standing in for a connection):

* pure-Python cursor classes (psycopg 3, PyMySQL) have their methods wrapped in place;
* C extension types (sqlite3, psycopg2), whose methods cannot be wrapped, are given
  through the driver's own hooks: ``connect`` is called with a connection factory, a
  subclass of the driver's (or of the user's own) connection class, whose ``cursor()``
  hands out subclasses of the requested cursor class. Connections and cursors are real
  driver objects, so C-level type checks keep working (psycopg2's ``register_type`` and
  ``extras.register_*``, sqlite3's ``backup``), and so do ``cursor_factory`` /
  ``row_factory``, named (server-side) cursors, context managers and iteration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sized
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from tracekit._db import (
    ENDPOINT_KEY,
    Args,
    Database,
    Endpoint,
    Kwargs,
    Request,
    Wrapper,
    async_wrapper,
    cached_endpoint,
    remember_endpoint,
    status_code,
    sync_wrapper,
)

__all__ = [
    "DbApi",
    "Driver",
    "disguise",
    "libpq_endpoint",
    "libpq_statement",
    "remember_endpoint",
    "switches",
    "traced_class",
    "traced_type",
]

_QUERY_KEYWORDS = ("query", "operation", "sql", "statement")
_PARAMETER_KEYWORDS = ("params", "parameters", "args", "vars")
_NO_DICT: dict[str, Any] = {}
_SEQUENCE_KEYWORDS = ("params_seq", "seq_of_parameters", "parameters", "args", "vars_list", "seq")


def _query_text(cursor: Any, query: Any) -> Any:
    return query


def libpq_endpoint(connection: Any) -> Endpoint:
    """The endpoint of a psycopg or psycopg2 connection, from its libpq ``info``."""
    info = connection.info
    return Endpoint("postgresql", info.dbname or None, info.host or None, info.port or None)


def libpq_statement(cursor: Any, query: Any) -> Any:
    """The text of a psycopg or psycopg2 query: ``str``, ``bytes`` or a ``sql.Composable``."""
    if query is None or isinstance(query, (str, bytes)):
        return query
    as_string = getattr(query, "as_string", None)
    return as_string(cursor) if as_string is not None else None


@dataclass(frozen=True)
class Driver:
    """One DB-API driver, as data."""

    integration: str
    #: The endpoint of a connection (called once per connection when ``cache_endpoint``).
    endpoint: Callable[[Any], Endpoint]
    #: The cursor attribute holding the connection it belongs to (``None``: closed, make no span).
    connection: str = "connection"
    #: The text of a query object (``str`` and ``bytes`` pass through; e.g. psycopg's ``sql.SQL``).
    statement: Callable[[Any, Any], Any] = _query_text
    #: The database's code for an exception (db.response.status_code).
    status: Callable[[BaseException], str | None] = status_code
    #: Whether a connection's endpoint can be kept on the connection object.
    cache_endpoint: bool = True


def _argument(args: Args, kwargs: Kwargs, index: int, names: tuple[str, ...]) -> tuple[Any, int | str | None]:
    if len(args) > index:
        return args[index], index
    for name in names:
        if name in kwargs:
            return kwargs[name], name
    return None, None


class DbApi:
    """The wrappers of one DB-API driver: ``execute`` and friends, sync and async."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.database = Database(driver.integration, driver.status)
        #: Whether the integration is patched: traced subclasses made earlier behave as their
        #: base classes while it is not.
        self.enabled = False
        self.execute: Wrapper = sync_wrapper(self.database, self._describe_execute)
        self.executemany: Wrapper = sync_wrapper(self.database, self._describe_executemany)
        self.callproc: Wrapper = sync_wrapper(self.database, self._describe_callproc)
        self.executescript: Wrapper = sync_wrapper(self.database, self._describe_execute)
        self.async_execute: Wrapper = async_wrapper(self.database, self._describe_execute)
        self.async_executemany: Wrapper = async_wrapper(self.database, self._describe_executemany)
        self.async_callproc: Wrapper = async_wrapper(self.database, self._describe_callproc)

    def endpoint(self, connection: Any) -> Endpoint:
        """The endpoint of ``connection``, kept on it when the driver allows."""
        driver = self.driver
        if not driver.cache_endpoint:
            return driver.endpoint(connection)
        return cached_endpoint(connection, driver.endpoint)

    def _request(self, cursor: Any, query: Any, where: int | str | None, parameters: Any) -> Request | None:
        # Runs for every statement: the usual case (a str statement, an endpoint kept on the
        # connection) makes no call but Request's.
        driver = self.driver
        connection = getattr(cursor, driver.connection, None)
        if connection is None:
            return None
        endpoint = (
            getattr(connection, "__dict__", _NO_DICT).get(ENDPOINT_KEY) if driver.cache_endpoint else None
        )
        if endpoint is None:
            endpoint = self.endpoint(connection)
        statement = query if type(query) is str else driver.statement(cursor, query)
        return Request(endpoint, statement, None, None, parameters, None, where)

    def _describe_execute(self, cursor: Any, args: Args, kwargs: Kwargs) -> Request | None:
        if args and not kwargs:  # the usual call: execute(query[, parameters])
            query = args[0]
            parameters = args[1] if len(args) > 1 else None
            where: int | str | None = 0
        else:
            query, where = _argument(args, kwargs, 0, _QUERY_KEYWORDS)
            parameters, _ = _argument(args, kwargs, 1, _PARAMETER_KEYWORDS)
        return self._request(cursor, query, where, parameters)

    def _describe_executemany(self, cursor: Any, args: Args, kwargs: Kwargs) -> Request | None:
        query, where = _argument(args, kwargs, 0, _QUERY_KEYWORDS)
        sequence, _ = _argument(args, kwargs, 1, _SEQUENCE_KEYWORDS)
        request = self._request(cursor, query, where, None)
        if request is None or not isinstance(sequence, Sized):
            return request
        return request._replace(batch=len(sequence))

    def _describe_callproc(self, cursor: Any, args: Args, kwargs: Kwargs) -> Request | None:
        name, _ = _argument(args, kwargs, 0, ("procname", "name"))
        parameters, _ = _argument(args, kwargs, 1, ("args", "params", "parameters"))
        if not isinstance(name, str):
            return None
        request = self._request(cursor, f"CALL {name}", None, parameters)
        return None if request is None else request._replace(procedure=name)


def traced_type(dbapi: DbApi, root: type, methods: Mapping[str, Wrapper]) -> type:
    """A subclass of the driver's C type ``root`` whose ``methods`` make spans while ``dbapi`` is patched.

    Each method hands the one it overrides (reached through ``super()``, so a user's
    subclass placed before it in the method order still runs first) to its wrapper, or
    calls it straight while the integration is unpatched. The subclass reads as ``root``.
    """
    made: list[type] = []

    def traced_method(name: str, wrapper: Wrapper) -> Callable[..., Any]:
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            overridden = getattr(super(made[0], self), name)
            if dbapi.enabled:
                return wrapper(overridden, self, args, kwargs)
            return overridden(*args, **kwargs)

        method.__name__ = name
        method.__qualname__ = f"{root.__qualname__}.{name}"
        return method

    cls = type(root.__name__, (root,), {name: traced_method(name, w) for name, w in methods.items()})
    made.append(cls)
    return disguise(cls, root)


def traced_class(base: type, traced: type, cache: dict[type, type]) -> type:
    """A subclass of ``base`` with the methods of ``traced`` (itself a subclass of the driver's root class).

    ``traced`` comes after ``base`` in the method order, so an override in ``base`` (a
    ``RealDictCursor.execute``, a ``LoggingConnection.cursor``) runs first and reaches the
    traced method through ``super()``. The subclass keeps ``base``'s name and module, so
    ``repr()`` and error messages read as before.
    """
    if traced.__mro__[1] is base:  # the driver's own class: the usual case
        return traced
    if issubclass(base, traced):
        return base
    found = cache.get(base)
    if found is None:
        found = disguise(type(base.__name__, (base, traced), {}), base)
        cache[base] = found
    return found


def disguise(cls: type, base: type) -> type:
    """Give ``cls`` the name, module and docstring of ``base`` (its ``repr()`` reads as before)."""
    cls.__name__ = base.__name__
    cls.__qualname__ = base.__qualname__
    cls.__module__ = base.__module__
    cls.__doc__ = base.__doc__
    return cls


def switches(patches: Any, dbapi: DbApi) -> tuple[Callable[[ModuleType], bool], Callable[[ModuleType], bool]]:
    """``patch`` and ``unpatch`` functions that also switch ``dbapi``'s traced subclasses on and off."""

    def patch(module: ModuleType) -> bool:
        applied: bool = patches.apply(module)
        dbapi.enabled = True
        return applied

    def unpatch(module: ModuleType) -> bool:
        dbapi.enabled = False
        reverted: bool = patches.revert(module)
        return reverted

    return patch, unpatch
