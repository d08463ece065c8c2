"""ASGI: one SERVER span per HTTP request or websocket connection, none for lifespan.

:class:`TracekitMiddleware` wraps any ASGI 3 application by hand::

    from tracekit.integrations.asgi import TracekitMiddleware
    app = TracekitMiddleware(app)

The starlette, fastapi, uvicorn and hypercorn integrations call :func:`traced` from their
patches, so that ``configure()`` alone traces those apps. Whichever of these sees a request
first makes its span; the others find the request marked in its scope and step aside.

The span is current while the application runs and ends when the application returns:
after the last body chunk of a streamed response, when a websocket closes, when the client
goes away, or when an exception escapes (recorded, then re-raised unchanged). The
application's ``send`` is wrapped only to read the response status (and to add the
``traceresponse`` header when asked); no span is made per message.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter

from tracekit._http_server import (
    KEY,
    ROOT,
    ServerConfig,
    ServerRequest,
    excluded,
    forwarded_for,
    server_config,
    skipped,
    start,
)
from tracekit._safety import report

__all__ = ["TracekitMiddleware", "app_kind", "framework_app", "traced"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_attach = otel_context.attach
_detach = otel_context.detach

#: The messages that carry the response status.
_STARTS = frozenset(
    ("http.response.start", "websocket.accept", "websocket.close", "websocket.http.response.start")
)


class TracekitMiddleware:
    """Trace every HTTP request and websocket connection of ``app`` (any ASGI 3 application).

    Excluded URLs come from ``OTEL_PYTHON_ASGI_EXCLUDED_URLS`` (else ``OTEL_PYTHON_EXCLUDED_URLS``,
    else the health-check paths). Spans are made while tracekit is configured; otherwise
    the middleware passes requests straight through.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await traced("asgi", "asgi", self.app, scope, receive, send)


def traced(integration: str, kind: str, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> Any:
    """``app(scope, receive, send)`` under a SERVER span (or plainly: lifespan, excluded, marked)."""
    scope_type = scope.get("type")
    if (scope_type != "http" and scope_type != "websocket") or KEY in scope:
        return app(scope, receive, send)
    config = server_config(kind)
    if config is None:
        return app(scope, receive, send)
    request = None
    try:
        request = _begin(config, integration, scope)
    except Exception as exc:
        report(integration, exc)
    scope[KEY] = request
    if request is None:
        return app(scope, receive, send)
    if not (request.config.traceresponse or request.span.is_recording()):
        return _in_context(request.context, app, scope, receive, send)  # nothing to record
    return _serve(request, app, scope, receive, send)


async def _in_context(context: Context, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """``app`` run in the request's ``context`` (an unsampled trace's: no span to complete)."""
    token = _attach(context)
    try:
        await app(scope, receive, send)
    finally:
        _detach(token)


def _begin(config: ServerConfig, integration: str, scope: Scope) -> ServerRequest | None:
    if "fastapi" in sys.modules:
        # FastAPI's own request telemetry: off for a request tracekit handles (one SERVER
        # span per request), and when it already runs, it is the span of this request.
        if scope.get("fastapi.telemetry") is not None:
            return None
        scope["fastapi.telemetry"] = None
    path = scope.get("path") or ""
    scheme = scope.get("scheme") or ("ws" if scope["type"] == "websocket" else "http")
    raw = scope.get("headers") or ()
    index: dict[bytes, bytes] = dict(raw)
    host_header = index.get(b"host")
    if host_header is not None:
        host: str | None = host_header.decode("latin-1")
    else:
        server = scope.get("server")
        host = (server[0] if server[1] is None else f"{server[0]}:{server[1]}") if server else None
    query_bytes = scope.get("query_string")
    query = query_bytes.decode("latin-1") if query_bytes else ""
    if config.excluded is None:
        if path in config.excluded_paths:
            return None
    elif excluded(config, scheme, host, path, query):
        return None
    textmap = config.propagator()
    if config.field_bytes.isdisjoint(index):
        parent = ROOT
    else:
        parent = textmap.extract(_Headers(raw, index), getter=_GETTER)
    method = scope.get("method") or "GET"
    request, root_trace_id = skipped(config, integration, parent, method)
    if request is not None:
        return request
    user_agent = index.get(b"user-agent")
    forwarded = index.get(b"forwarded")
    x_forwarded_for = index.get(b"x-forwarded-for")
    client = None
    if forwarded is not None or x_forwarded_for is not None:
        client = forwarded_for(
            forwarded.decode("latin-1") if forwarded is not None else None,
            x_forwarded_for.decode("latin-1") if x_forwarded_for is not None else None,
        )
    peer = scope.get("client")
    return start(
        config,
        integration,
        parent,
        method,
        scheme,
        path,
        query,
        host,
        peer[0] if peer else None,
        client,
        user_agent.decode("latin-1") if user_agent is not None else None,
        scope.get("http_version"),
        (lambda: _decoded(raw)) if config.capture_request else None,
        root_trace_id,
    )


async def _serve(request: ServerRequest, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    def traced_send(message: Message) -> Awaitable[None]:
        # A plain function handing back send's awaitable: no coroutine of its own per message.
        if message["type"] in _STARTS:
            message = _response(request, message)
        return send(message)

    token = _attach(request.context)
    try:
        await app(scope, receive, traced_send)
    except BaseException as exc:
        request.failed(exc)
        raise
    finally:
        _detach(token)
        if request.route is None:
            _route_from_scope(request, scope)
        request.finish()


def _response(request: ServerRequest, message: Message) -> Message:
    try:
        kind = message["type"]
        if kind == "websocket.close":
            if request.status is not None:
                return message
            status = 403  # closed before the handshake completed: the server answers 403
        elif kind == "websocket.accept":
            status = 101
        else:
            status = int(message["status"])
        request.status = status
        config = request.config
        if config.capture_response or config.traceresponse:
            headers = message.get("headers") or ()
            value = request.response(_decoded(headers))
            if value is not None and kind != "websocket.close":
                message = {**message, "headers": [*headers, (b"traceresponse", value.encode("ascii"))]}
    except Exception as exc:
        report(request.integration, exc)
    return message


def _route_from_scope(request: ServerRequest, scope: Scope) -> None:
    # Without tracekit's routing hooks (an integration switched off), the router's own
    # result in the scope: Starlette and FastAPI keep the matched route in scope["route"].
    try:
        path_format = getattr(scope.get("route"), "path_format", None)
        if isinstance(path_format, str):
            request.route = request.prefix + path_format
    except Exception as exc:
        report(request.integration, exc)


def _decoded(headers: Iterable[tuple[bytes, bytes]]) -> Iterable[tuple[str, str]]:
    return ((name.decode("latin-1"), value.decode("latin-1")) for name, value in headers)


class _Headers:
    """The request's header fields (lowercase names, as ASGI gives them), indexed by name."""

    __slots__ = ("index", "raw")

    def __init__(self, raw: Iterable[tuple[bytes, bytes]], index: dict[bytes, bytes]) -> None:
        self.raw = raw
        self.index = index


_NAMES: dict[str, bytes] = {}


class _HeadersGetter(Getter[_Headers]):
    def get(self, carrier: _Headers, key: str) -> list[str] | None:
        name = _NAMES.get(key)
        if name is None:
            name = _NAMES.setdefault(key, key.lower().encode("latin-1"))
        if name not in carrier.index:
            return None
        values = [value.decode("latin-1") for field, value in carrier.raw if field == name]
        if len(values) > 1 and name == b"baggage":
            return [",".join(values)]  # the baggage propagator reads one (combined) field
        return values

    def keys(self, carrier: _Headers) -> list[str]:
        return [name.decode("latin-1") for name in carrier.index]


_GETTER = _HeadersGetter()


def app_kind(app: Any) -> str:
    """``fastapi``, ``starlette`` or ``asgi``: which excluded-URL setting applies to ``app``.

    Middleware objects are looked through (their ``app`` attribute), a few levels deep.
    """
    return framework_app(app)[1]


def framework_app(app: Any) -> tuple[Any, str]:
    """The FastAPI or Starlette application inside ``app`` (``app`` itself when there is
    none), and its kind: ``fastapi``, ``starlette`` or ``asgi``."""
    fastapi = sys.modules.get("fastapi.applications")
    starlette = sys.modules.get("starlette.applications")
    found = app
    for _ in range(8):
        if fastapi is not None and isinstance(found, fastapi.FastAPI):
            return found, "fastapi"
        if starlette is not None and isinstance(found, starlette.Starlette):
            return found, "starlette"
        found = getattr(found, "app", None)
        if found is None:
            break
    return app, "asgi"
