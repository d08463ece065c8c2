"""SQLAlchemy: a CLIENT span for each statement a ``Connection`` sends, sync and asyncio engines.

The span is made around ``Connection._exec_single_context`` (one ``cursor.execute`` or
``cursor.executemany``) and ``_exec_insertmany_context`` (an "insertmanyvalues" batch), where
the compiled statement, the dialect and the engine's URL are known. It marks the database
layer as active, so the DB-API driver underneath (psycopg, psycopg2, PyMySQL, sqlite3,
asyncpg) makes no span of its own: one statement, one span. With the asyncio engines the
driver runs in the same context (SQLAlchemy's greenlets share it), so the same holds.
``error.type`` and ``db.response.status_code`` come from the driver's exception that
SQLAlchemy wrapped (``.orig``). With sqlcommenter, the comment goes into the execution
context's statement, which is what SQLAlchemy hands the cursor (and its own event hooks
and log); "insertmanyvalues" batches, which SQLAlchemy rewrites per batch, are not commented.
"""

from __future__ import annotations

from typing import Any

from tracekit._db import Args, Database, Endpoint, Kwargs, Request, sync_wrapper
from tracekit._patch import Patches, Plain

__all__ = ["DATABASE", "patch", "patches", "unpatch"]

DATABASE = Database("sqlalchemy")

_SYSTEMS = {
    "postgresql": "postgresql",
    "mysql": "mysql",
    "mariadb": "mariadb",
    "sqlite": "sqlite",
    "mssql": "microsoft.sql_server",
    "oracle": "oracle.db",
}
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "microsoft.sql_server": 1433}
_ENDPOINT = "_tracekit_endpoint"


def _make_endpoint(engine: Any, dialect: Any) -> Endpoint:
    system = _SYSTEMS.get(dialect.name, dialect.name)
    if system == "mysql" and getattr(dialect, "is_mariadb", False):
        system = "mariadb"
    url = engine.url
    database = url.database or None
    if system == "sqlite" or not url.host:
        return Endpoint(system, database)
    return Endpoint(system, database, url.host, url.port or _DEFAULT_PORTS.get(system))


def _endpoint(connection: Any, dialect: Any) -> Endpoint:
    engine = connection.engine
    # Kept per engine, keyed by is_mariadb: it is known only once the first connection is made.
    key = getattr(dialect, "is_mariadb", None)
    state = vars(engine)
    found = state.get(_ENDPOINT)
    if found is None or found[0] != key:
        found = (key, _make_endpoint(engine, dialect))
        state[_ENDPOINT] = found
    endpoint: Endpoint = found[1]
    return endpoint


def _single(connection: Any, args: Args, kwargs: Kwargs) -> Request:
    # _exec_single_context(dialect, context, statement, parameters)
    dialect, context = args[0], args[1]
    parameters = context.parameters
    if context.executemany:
        return Request(
            _endpoint(connection, dialect),
            context.statement,
            batch=len(parameters),
            where=(context, "statement"),
        )
    return Request(
        _endpoint(connection, dialect),
        context.statement,
        parameters=parameters[0] if parameters else None,
        where=(context, "statement"),
    )


def _insertmany(connection: Any, args: Args, kwargs: Kwargs) -> Request:
    # _exec_insertmany_context(dialect, context)
    dialect, context = args[0], args[1]
    return Request(_endpoint(connection, dialect), context.statement, batch=len(context.parameters))


patches = Patches(
    "sqlalchemy",
    {
        "sqlalchemy": [
            ("engine.base.Connection._exec_single_context", Plain(sync_wrapper(DATABASE, _single))),
            ("engine.base.Connection._exec_insertmany_context", Plain(sync_wrapper(DATABASE, _insertmany))),
        ]
    },
)
patch = patches.apply
unpatch = patches.revert
