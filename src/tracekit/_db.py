"""What every database client integration shares: one CLIENT span per call sent to the server.

An integration describes its library with a ``describe(instance, args, kwargs)`` function
returning a :class:`Request` (where the server is, the statement, the batch size) and gets
its sync and async wrappers from :func:`sync_wrapper` / :func:`async_wrapper`. Everything
else is written once, here:

* no span while OpenTelemetry's suppression key is set, nor inside another database span
  (SQLAlchemy over a DB-API driver, or a driver method that calls another, is one span);
* the span name is ``db.query.summary`` (``SELECT orders``), else ``{db.operation.name}
  {db.collection.name}``, else the operation, else ``db.system.name``; a batch of two or more
  is ``BATCH`` followed by that;
* the stable attributes (and the older names under ``database/dup``), ``db.query.text``
  sanitized by :mod:`tracekit._sql` unless ``db_statement`` says ``raw`` or ``off``,
  parameters only with ``db_capture_parameters``;
* optionally (``sqlcommenter``) a ``/*traceparent='...'*/`` comment appended to the statement;
* on an exception: ERROR status, ``error.type`` (the driver's exception when a library wrapped
  it), ``db.response.status_code`` (SQLSTATE, MySQL error number, SQLite error name, Redis
  error prefix), an ``exception`` event; the exception is re-raised unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from contextvars import Token
from typing import Any, NamedTuple

from opentelemetry.trace import Span, SpanKind

from tracekit import _state
from tracekit._context import current_context
from tracekit._safety import report
from tracekit._semconv import (
    DB_COLLECTION_NAME,
    DB_NAMESPACE,
    DB_OPERATION_BATCH_SIZE,
    DB_OPERATION_NAME,
    DB_OPERATION_PARAMETER,
    DB_QUERY_SUMMARY,
    DB_QUERY_TEXT,
    DB_RESPONSE_STATUS_CODE,
    DB_STORED_PROCEDURE_NAME,
    DB_SYSTEM_NAME,
    OLD_DB_NAME,
    OLD_DB_OPERATION,
    OLD_DB_SQL_TABLE,
    OLD_DB_STATEMENT,
    OLD_DB_SYSTEM,
    OLD_NET_PEER_NAME,
    OLD_NET_PEER_PORT,
    SERVER_ADDRESS,
    SERVER_PORT,
    qualified_name,
)
from tracekit._spans import record_exception
from tracekit._sql import Analysis, analyze, dialect_of
from tracekit._suppression import DB_CLIENT, SUPPRESS_INSTRUMENTATION_KEY

__all__ = [
    "ENDPOINT_KEY",
    "Call",
    "Database",
    "Endpoint",
    "Request",
    "async_wrapper",
    "cached_endpoint",
    "status_code",
    "sync_wrapper",
]

Args = tuple[Any, ...]
Kwargs = dict[str, Any]


class Endpoint(NamedTuple):
    """Where a connection goes: the same for every call made over it."""

    #: db.system.name: postgresql, mysql, mariadb, sqlite, redis, ...
    system: str
    #: db.namespace: the database name (Redis: the database index).
    namespace: str | None = None
    address: str | None = None
    port: int | None = None


class Request(NamedTuple):
    """One call about to be made, as the integration's ``describe`` sees it."""

    endpoint: Endpoint
    #: The statement text (``str``; ``bytes`` are decoded), analysed with the endpoint's dialect.
    statement: Any = None
    #: Given instead of a statement by integrations that are not SQL (Redis).
    analysis: Analysis | None = None
    #: How many operations a batch call (executemany, a pipeline) carries.
    batch: int | None = None
    #: The call's parameters: recorded only with ``db_capture_parameters``.
    parameters: Any = None
    #: db.stored_procedure.name, for callproc.
    procedure: str | None = None
    #: Where the statement is, for sqlcommenter: among the call's arguments (an index or a
    #: keyword), or ``(object, attribute name)`` for one the library reads from an object.
    where: int | str | tuple[object, str] | None = None
    #: The statement as sent, when ``db_statement=raw`` and it is not ``statement`` (Redis).
    raw: Callable[[], str] | None = None


Describe = Callable[[Any, Args, Kwargs], Request | None]
#: What :meth:`Database.begin` hands the wrapper: ``(span, layer token, args, kwargs)``.
Call = tuple[Span, Token[bool], Args, Kwargs]

#: The attribute under which a connection (a pool) keeps its endpoint.
ENDPOINT_KEY = "_tracekit_endpoint"
# Bound once: the per-call paths below read module globals, not attribute chains.
_get_current = current_context
_in_layer = DB_CLIENT.var.get
_enter_layer = DB_CLIENT.var.set
_leave_layer = DB_CLIENT.var.reset
_CLIENT = SpanKind.CLIENT
_SPAN_CACHE_SIZE = 1024


def cached_endpoint(holder: Any, make: Callable[[Any], Endpoint]) -> Endpoint:
    """``make(holder)``, kept on ``holder`` (a connection, a pool) when it has a ``__dict__``."""
    try:
        return vars(holder)[ENDPOINT_KEY]  # type: ignore[no-any-return]
    except (KeyError, TypeError):
        endpoint = make(holder)
        remember_endpoint(holder, endpoint)
        return endpoint


def remember_endpoint(holder: Any, endpoint: Endpoint) -> None:
    """Keep ``endpoint`` on ``holder`` (for objects that cannot tell it later)."""
    with contextlib.suppress(TypeError):  # no __dict__: it is made again each call
        vars(holder)[ENDPOINT_KEY] = endpoint


def status_code(exc: BaseException) -> str | None:
    """The database's code for ``exc``: SQLSTATE, a MySQL error number, an SQLite error name.

    Looks at ``exc``, at the driver exception a library wrapped (``exc.orig``, SQLAlchemy)
    and at its direct cause.
    """
    orig = getattr(exc, "orig", None)
    seen = [exc, orig, exc.__cause__, getattr(orig, "__cause__", None)]
    for candidate in seen:
        if candidate is None:
            continue
        args = getattr(candidate, "args", ())
        if (  # MySQL and MariaDB: the server's error number, as their conventions say
            args
            and isinstance(args[0], int)
            and not isinstance(args[0], bool)
            and type(candidate).__module__.startswith(("pymysql", "MySQLdb", "mysql", "mariadb"))
        ):
            return str(args[0])
        for attribute in ("sqlstate", "pgcode", "sqlite_errorname"):
            code = getattr(candidate, attribute, None)
            if isinstance(code, str) and code:
                return code
    return None


def _reported_type(exc: BaseException) -> str:
    """error.type: the driver's own exception when a library wrapped it (SQLAlchemy's ``orig``)."""
    orig = getattr(exc, "orig", None)
    if isinstance(orig, BaseException):
        return qualified_name(type(orig))
    return qualified_name(type(exc))


class _Config:
    """What the settings say about database spans, resolved once per configuration."""

    __slots__ = ("commenter", "dup", "mode", "parameters", "propagate", "spans")

    def __init__(self, settings: Any) -> None:
        #: (endpoint, statement, batch, procedure) -> (name, attributes, statement): the span of a
        #: statement seen before is described without another look at the statement.
        self.spans: dict[tuple[Any, ...], tuple[str, dict[str, Any], Any]] = {}
        self.mode: str = settings.db_statement
        self.parameters: bool = settings.db_capture_parameters
        self.commenter: bool = settings.sqlcommenter
        self.dup = "database/dup" in settings.semconv_opt_in
        self.propagate: Callable[[Span], str] | None = _traceparent if self.commenter else None


def _traceparent(span: Span) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def _parameter_attributes(parameters: Any) -> dict[str, str]:
    if isinstance(parameters, Mapping):
        return {f"{DB_OPERATION_PARAMETER}{key}": str(value) for key, value in parameters.items()}
    if isinstance(parameters, Sequence) and not isinstance(parameters, (str, bytes)):
        return {f"{DB_OPERATION_PARAMETER}{index}": str(value) for index, value in enumerate(parameters)}
    return {}


class Database:
    """The database span logic, bound to one integration and its ``status_code`` reader."""

    __slots__ = ("_config", "_config_for", "integration", "status_code")

    def __init__(self, integration: str, status: Callable[[BaseException], str | None] = status_code) -> None:
        self.integration = integration
        self.status_code = status
        self._config: _Config | None = None
        self._config_for: object = None

    def _configuration(self, current: Any) -> _Config | None:
        if self._config_for is not current:
            self._config = _Config(current.settings) if current.enabled else None
            self._config_for = current
        return self._config

    def begin(self, describe: Describe, instance: Any, args: Args, kwargs: Kwargs) -> Call | None:
        """Start the span of one call: ``None`` means "call the library unchanged".

        Else ``(span, token, args, kwargs)``: call the library with these ``args`` and ``kwargs``,
        then hand ``span`` and ``token`` back, to :meth:`failed` if it raised.
        """
        current = _state.current
        if current is None or _in_layer():
            return None
        context = _get_current()
        if context.get(SUPPRESS_INSTRUMENTATION_KEY):
            return None
        span = None
        try:
            config = self._config if self._config_for is current else self._configuration(current)
            if config is None:
                return None
            if config.propagate is None and (span := _state.tracer.dropped_child(context)) is not None:
                return span, _enter_layer(True), args, kwargs
            request = describe(instance, args, kwargs)
            if request is None:
                return None
            statement = request.statement
            key = None
            if (
                type(statement) is str  # exactly str: the key must hash and compare cheaply
                and request.analysis is None
                and request.raw is None
                and (request.parameters is None or not config.parameters)
            ):
                key = (request.endpoint, statement, request.batch, request.procedure)
                found = config.spans.get(key)
            else:
                found = None
            if found is None:
                found = self._describe_span(config, request)
                if key is not None:
                    if len(config.spans) >= _SPAN_CACHE_SIZE:
                        config.spans.clear()
                    config.spans[key] = found
            name, attributes, statement = found
            # The context read above is the parent: the SDK need not look it up twice more.
            span = _state.tracer.start_known_span(name, context, _CLIENT, attributes)
            if config.propagate is not None and isinstance(statement, str) and request.where is not None:
                args, kwargs = _with_comment(config.propagate(span), statement, request.where, args, kwargs)
            return span, _enter_layer(True), args, kwargs
        except Exception as exc:
            report(self.integration, exc)
            if span is not None:
                span.end()
            return None

    def failed(self, span: Span, token: Token[bool], exc: BaseException) -> None:
        """The call begun with ``span`` raised ``exc`` (re-raised by the caller): record it, end the span."""
        _leave(token)
        try:
            if span.is_recording():
                code = self.status_code(exc)
                record_exception(
                    span, exc, _reported_type(exc), None if code is None else {DB_RESPONSE_STATUS_CODE: code}
                )
        except Exception as internal:
            report(self.integration, internal)
        span.end()

    def _describe_span(self, config: _Config, request: Request) -> tuple[str, dict[str, Any], Any]:
        """``(name, attributes, statement text)`` of a request."""
        endpoint = request.endpoint
        statement = request.statement
        analysis = request.analysis
        if analysis is None and statement is not None:
            if isinstance(statement, (bytes, bytearray, memoryview)):
                statement = bytes(statement).decode("utf-8", "replace")
            if isinstance(statement, str):
                analysis = analyze(statement, dialect_of(endpoint.system))
        name = self._name(endpoint, analysis, request.batch if request.analysis is None else None)
        return name, self._attributes(config, request, analysis, statement), statement

    @staticmethod
    def _name(endpoint: Endpoint, analysis: Analysis | None, batch: int | None) -> str:
        name = None
        if analysis is not None:
            name = analysis.summary
            if name is None and analysis.operation is not None:
                name = analysis.operation
                if analysis.collection is not None:
                    name = f"{name} {analysis.collection}"
        if name is None:
            return endpoint.system
        if batch is not None and batch > 1:
            return f"BATCH {name}"
        return name

    @staticmethod
    def _attributes(
        config: _Config, request: Request, analysis: Analysis | None, statement: Any
    ) -> dict[str, Any]:
        endpoint = request.endpoint
        attributes: dict[str, Any] = {DB_SYSTEM_NAME: endpoint.system}
        if endpoint.namespace is not None:
            attributes[DB_NAMESPACE] = endpoint.namespace
        if endpoint.address is not None:
            attributes[SERVER_ADDRESS] = endpoint.address
            if endpoint.port is not None:
                attributes[SERVER_PORT] = endpoint.port
        batch = request.batch if request.batch is not None and request.batch > 1 else None
        # A batch of one statement is named BATCH {statement}; an integration's own analysis
        # (a Redis MULTI) already names the batch.
        prefix = "BATCH " if batch is not None and request.analysis is None else ""
        operation = collection = text = None
        if analysis is not None:
            operation = analysis.operation
            collection = analysis.collection
            if analysis.summary is not None:
                attributes[DB_QUERY_SUMMARY] = prefix + analysis.summary
            if config.mode == "sanitized":
                text = analysis.text
            elif config.mode == "raw":
                text = request.raw() if request.raw is not None else statement
            if operation is not None:
                attributes[DB_OPERATION_NAME] = prefix + operation
            if collection is not None:
                attributes[DB_COLLECTION_NAME] = collection
            if text is not None:
                attributes[DB_QUERY_TEXT] = text
        if batch is not None:
            attributes[DB_OPERATION_BATCH_SIZE] = batch
        if request.procedure is not None:
            attributes[DB_STORED_PROCEDURE_NAME] = request.procedure
        if config.parameters and request.parameters is not None:
            attributes.update(_parameter_attributes(request.parameters))
        if config.dup:
            attributes[OLD_DB_SYSTEM] = endpoint.system
            if endpoint.namespace is not None:
                attributes[OLD_DB_NAME] = endpoint.namespace
            if text is not None:
                attributes[OLD_DB_STATEMENT] = text
            if operation is not None:
                attributes[OLD_DB_OPERATION] = operation
            if collection is not None and endpoint.system != "redis":
                attributes[OLD_DB_SQL_TABLE] = collection
            if endpoint.address is not None:
                attributes[OLD_NET_PEER_NAME] = endpoint.address
                if endpoint.port is not None:
                    attributes[OLD_NET_PEER_PORT] = endpoint.port
        return attributes


def _with_comment(
    traceparent: str, statement: str, where: int | str | tuple[object, str], args: Args, kwargs: Kwargs
) -> tuple[Args, Kwargs]:
    commented = f"{statement.rstrip()} /*traceparent='{traceparent}'*/"
    if isinstance(where, tuple):
        setattr(where[0], where[1], commented)
    elif isinstance(where, int):
        if where < len(args):
            args = (*args[:where], commented, *args[where + 1 :])
    elif where in kwargs:
        kwargs = {**kwargs, where: commented}
    return args, kwargs


def _leave(token: Token[bool]) -> None:
    try:  # noqa: SIM105 - contextlib.suppress costs an object per call
        _leave_layer(token)
    except ValueError:  # reset from another context: nothing to undo there
        pass


Wrapper = Callable[[Any, Any, Args, Kwargs], Any]


def sync_wrapper(database: Database, describe: Describe) -> Wrapper:
    """A wrapper making one span around a synchronous database call.

    Declared :class:`~tracekit._patch.Plain` where the target is a Python method (cheaper per
    call than wrapt); coroutine functions stay with wrapt (see :func:`tracekit._http.sync_send`).
    """
    begin = database.begin
    failed = database.failed

    def call_database(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        call = begin(describe, instance, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        span, token, args, kwargs = call
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            failed(span, token, exc)
            raise
        _leave(token)
        span.end()
        return result

    return call_database


def async_wrapper(database: Database, describe: Describe) -> Wrapper:
    """:func:`sync_wrapper` for a coroutine function."""
    begin = database.begin
    failed = database.failed

    async def call_database(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        call = begin(describe, instance, args, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        span, token, args, kwargs = call
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            failed(span, token, exc)
            raise
        _leave(token)
        span.end()
        return result

    return call_database
