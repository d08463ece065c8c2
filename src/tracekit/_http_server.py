"""What every HTTP server integration shares: one SERVER span per request (or connection).

The ASGI and WSGI glue (:mod:`tracekit.integrations.asgi`, :mod:`tracekit.integrations.wsgi`)
reads its protocol's request and hands it to :func:`start`; the framework hooks report the
route; the glue reports the response and the end. Everything
else is written once here:

* at most one span per request, whichever hooks see it: the first marks the request
  (``KEY`` in the ASGI scope or the WSGI environ) and the others step aside;
* excluded requests make no span: by default the health-check paths in
  :data:`DEFAULT_EXCLUDED_PATHS` (exact), replaced by ``OTEL_PYTHON_<KIND>_EXCLUDED_URLS``
  or ``OTEL_PYTHON_EXCLUDED_URLS`` (regular expressions searched in the full URL);
* the span continues the incoming trace with the configured propagators, is named
  ``{method} {http.route}`` once the framework's router has matched (``{method}``
  otherwise) and carries the stable attributes (and the old ones under ``http/dup``);
* ERROR only for 5xx responses and unhandled exceptions (``error.type`` the status code or
  the exception's qualified class name, an ``exception`` event for exceptions), the
  exception itself always re-raised by the glue, unchanged;
* an optional ``traceresponse`` response header (W3C Trace Context Level 2).

tracekit's own failures are reported through :func:`tracekit._safety.report` and never
reach the application: a request tracekit fails to describe is simply served untraced.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from tracekit import _state
from tracekit._http import split_authority
from tracekit._propagation import extracted_fields
from tracekit._redaction import captured_headers, header_sanitizer, redact_query
from tracekit._safety import report
from tracekit._semconv import (
    CLIENT_ADDRESS,
    ERROR_TYPE,
    HTTP_REQUEST_HEADER,
    HTTP_REQUEST_METHOD,
    HTTP_REQUEST_METHOD_ORIGINAL,
    HTTP_RESPONSE_HEADER,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
    NETWORK_PEER_ADDRESS,
    NETWORK_PROTOCOL_VERSION,
    OLD_HTTP_CLIENT_IP,
    OLD_HTTP_FLAVOR,
    OLD_HTTP_METHOD,
    OLD_HTTP_SCHEME,
    OLD_HTTP_STATUS_CODE,
    OLD_HTTP_TARGET,
    OLD_HTTP_USER_AGENT,
    OLD_NET_HOST_NAME,
    OLD_NET_HOST_PORT,
    OLD_NET_PEER_IP,
    SERVER_ADDRESS,
    SERVER_PORT,
    URL_PATH,
    URL_QUERY,
    URL_SCHEME,
    USER_AGENT_ORIGINAL,
    exception_event,
    http_method,
    qualified_name,
)
from tracekit._tracecontext import format_traceparent

__all__ = [
    "DEFAULT_EXCLUDED_PATHS",
    "KEY",
    "ROOT",
    "ServerConfig",
    "ServerRequest",
    "excluded",
    "forwarded_for",
    "server_config",
    "skipped",
    "split_host",
    "start",
]

#: The scope / environ key of a request some hook already handles: its value is the
#: :class:`ServerRequest` (``None`` when the request is excluded or untraced).
KEY = "tracekit.request"

#: Health checks and scrapes: paths (compared exactly) that make no span by default.
DEFAULT_EXCLUDED_PATHS = frozenset(("/health", "/healthz", "/readyz", "/livez", "/ping", "/metrics"))


class ServerConfig:
    """What the settings say about the server spans of one kind of app (asgi, flask, ...)."""

    __slots__ = (
        "capture_request",
        "capture_response",
        "dup",
        "environ_fields",
        "excluded",
        "excluded_paths",
        "field_bytes",
        "fields",
        "global_textmap",
        "sanitize",
        "textmap",
        "traceresponse",
    )

    def __init__(self, kind: str, settings: Any) -> None:
        # Imported here, once configure() has loaded it safely (see tracekit._propagation).
        from opentelemetry import propagate

        self.global_textmap = propagate.get_global_textmap
        self.textmap: Any = None
        #: The header names the propagators read: without any of them, nothing is extracted.
        #: (Also as ASGI header names and as WSGI environ keys.)
        self.fields: frozenset[str] = frozenset()
        self.field_bytes: frozenset[bytes] = frozenset()
        self.environ_fields: tuple[str, ...] = ()
        patterns = getattr(settings, f"{kind}_excluded_urls", ()) or settings.excluded_urls
        self.excluded = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None
        self.excluded_paths = frozenset() if patterns else DEFAULT_EXCLUDED_PATHS
        self.capture_request = frozenset(h.lower() for h in settings.http_capture_headers_server_request)
        self.capture_response = frozenset(h.lower() for h in settings.http_capture_headers_server_response)
        self.sanitize = header_sanitizer(settings.http_capture_headers_sanitize_fields)
        self.dup = "http/dup" in settings.semconv_opt_in
        self.traceresponse = settings.traceresponse

    def propagator(self) -> Any:
        """The global propagator (looked up on each request: the application may replace it)."""
        textmap = self.global_textmap()
        if textmap is not self.textmap:
            self.fields = extracted_fields(textmap.fields)
            self.field_bytes = frozenset(field.encode("latin-1") for field in self.fields)
            self.environ_fields = tuple("HTTP_" + field.upper().replace("-", "_") for field in self.fields)
            self.textmap = textmap
        return textmap


_configs: dict[str, ServerConfig | None] = {}
_configs_for: list[object] = [None]


def server_config(kind: str) -> ServerConfig | None:
    """The configuration for ``kind``'s spans; ``None`` while tracekit is not recording."""
    current = _state.current
    if current is None:
        return None
    if _configs_for[0] is not current:
        _configs.clear()
        _configs_for[0] = current
    try:
        return _configs[kind]
    except KeyError:
        config = ServerConfig(kind, current.settings) if current.enabled else None
        _configs[kind] = config
        return config


#: The parent of a request that carries no propagation header: a new trace.
ROOT = Context()


def excluded(config: ServerConfig, scheme: str, host: str | None, path: str, query: str) -> bool:
    """Whether the request makes no span."""
    if config.excluded is None:
        return path in config.excluded_paths
    url = f"{scheme}://{host or ''}{path}?{query}" if query else f"{scheme}://{host or ''}{path}"
    return config.excluded.search(url) is not None


_hosts: dict[tuple[str, str], tuple[str, int | None]] = {}


def split_host(host: str, scheme: str) -> tuple[str, int | None]:
    """``(server.address, server.port)`` from a Host header (the port defaults from the scheme)."""
    found = _hosts.get((host, scheme))
    if found is not None:
        return found
    found = split_authority(host, scheme)
    if len(_hosts) < 256:
        _hosts[(host, scheme)] = found
    return found


def forwarded_for(forwarded: str | None, x_forwarded_for: str | None) -> str | None:
    """The original client behind proxies: ``Forwarded: for=`` (RFC 7239), else ``X-Forwarded-For``."""
    if forwarded:
        for pair in forwarded.split(",", 1)[0].split(";"):
            name, _, value = pair.strip().partition("=")
            if name.lower() == "for" and value:
                value = value.strip('"')
                if value.startswith("["):
                    return value[1:].partition("]")[0] or None
                return value.partition(":")[0] or None
    if x_forwarded_for:
        return x_forwarded_for.split(",", 1)[0].strip() or None
    return None


class ServerRequest:
    """One traced request, from :func:`start` to :meth:`finish` (called exactly once)."""

    __slots__ = (
        "config",
        "context",
        "done",
        "exception",
        "integration",
        "method_name",
        "pending",
        "prefix",
        "response_attributes",
        "route",
        "span",
        "status",
    )

    def __init__(
        self, config: ServerConfig, integration: str, span: Span, context: Context, method_name: str
    ) -> None:
        self.config = config
        self.integration = integration
        self.span = span
        #: The context the application runs in: the incoming one with the server span in it.
        self.context = context
        self.method_name = method_name
        #: The route template, as the framework's router reported it.
        self.route: str | None = None
        #: Route prefix of the mounts the request went through (Starlette / FastAPI).
        self.prefix = ""
        #: FastAPI reported the route about to be handled (its Starlette hook then steps aside).
        self.pending = False
        #: The response status, once the response has started.
        self.status: int | None = None
        self.exception: BaseException | None = None
        self.response_attributes: dict[str, Any] | None = None
        self.done = False

    def response(self, headers: Iterable[tuple[str, str]]) -> str | None:
        """The response (its status already in :attr:`status`) starts with ``headers``: capture
        them if asked; returns the ``traceresponse`` value to send, if any.

        Only called when response headers are captured or ``traceresponse`` is on.
        """
        config = self.config
        try:
            if config.capture_response and self.span.is_recording():
                self.response_attributes = captured_headers(
                    HTTP_RESPONSE_HEADER, config.capture_response, headers, config.sanitize
                )
            if config.traceresponse:
                span_context = self.span.get_span_context()
                if span_context.is_valid:
                    return format_traceparent(span_context)
        except Exception as exc:
            report(self.integration, exc)
        return None

    def failed(self, exc: BaseException) -> None:
        """An exception escaped the application (the caller re-raises it)."""
        if not isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
            self.exception = exc

    def finish(self) -> None:
        """Record the outcome and end the span; later calls do nothing."""
        if self.done:
            return
        self.done = True
        span = self.span
        try:
            if span.is_recording():
                attributes: dict[str, Any] = {}
                route = self.route
                if route is not None:
                    attributes[HTTP_ROUTE] = route
                    span.update_name(f"{self.method_name} {route}")
                status = self.status
                if status is not None:
                    attributes[HTTP_RESPONSE_STATUS_CODE] = status
                    if self.config.dup:
                        attributes[OLD_HTTP_STATUS_CODE] = status
                if self.response_attributes:
                    attributes.update(self.response_attributes)
                exc = self.exception
                if exc is not None:
                    error_type = qualified_name(type(exc))
                    attributes[ERROR_TYPE] = error_type
                    span.add_event("exception", exception_event(exc))
                    span.set_status(Status(StatusCode.ERROR, str(exc) or error_type))
                elif status is not None and status >= 500:
                    attributes[ERROR_TYPE] = str(status)
                    span.set_status(Status(StatusCode.ERROR))
                _state.tracer.set_known_attributes(span, attributes)
        except Exception as internal:
            report(self.integration, internal)
        span.end()


def skipped(
    config: ServerConfig, integration: str, parent: Context, method: str
) -> tuple[ServerRequest | None, int]:
    """What stands for a SERVER span the sampler drops whatever it holds, decided before the
    request's details are read: ``(request, 0)``, or ``(None, trace id)`` when the span is
    to be made (the trace id drawn for a root, ``0`` under a parent: see :func:`start`).

    ``traceresponse`` names the span's own id, so with it on nothing is skipped.
    """
    if config.traceresponse:
        return None, 0
    try:
        tracer = _state.tracer
        dropped = tracer.dropped_child(parent)
        root_trace_id = 0
        if dropped is None:
            root_trace_id, dropped = tracer.dropped_root(parent)
            if dropped is None:
                return None, root_trace_id
        context = trace.set_span_in_context(dropped, parent)
        return ServerRequest(config, integration, dropped, context, method), 0
    except Exception as exc:
        report(integration, exc)
        return None, 0


def start(
    config: ServerConfig,
    integration: str,
    parent: Context,
    method: str,
    scheme: str,
    path: str,
    query: str,
    host: str | None,
    peer: str | None,
    forwarded: str | None,
    user_agent: str | None,
    protocol: str | None,
    request_headers: Callable[[], Iterable[tuple[str, str]]] | None,
    root_trace_id: int = 0,
) -> ServerRequest | None:
    """Start the SERVER span of a request; ``None`` if tracekit failed (reported).

    Called when :func:`skipped` skipped nothing, with the trace id it drew. ``parent`` is the
    extracted context; ``forwarded`` the original client named by a proxy's ``Forwarded`` /
    ``X-Forwarded-For`` header; ``request_headers`` yields the request's ``(name, value)``
    pairs for header capture (``None`` when none is captured).
    """
    try:
        name, value, original = http_method(method)
        attributes: dict[str, Any] = {
            HTTP_REQUEST_METHOD: value,
            URL_SCHEME: scheme,
            URL_PATH: path,
        }
        if query:
            query = redact_query(query)
            attributes[URL_QUERY] = query
        if original is not None:
            attributes[HTTP_REQUEST_METHOD_ORIGINAL] = original
        address = port = None
        if host:
            address, port = split_host(host, scheme)
            attributes[SERVER_ADDRESS] = address
            if port is not None:
                attributes[SERVER_PORT] = port
        client = forwarded or peer
        if client:
            attributes[CLIENT_ADDRESS] = client
        if peer:
            attributes[NETWORK_PEER_ADDRESS] = peer
        if user_agent:
            attributes[USER_AGENT_ORIGINAL] = user_agent
        if protocol:
            attributes[NETWORK_PROTOCOL_VERSION] = protocol
        if config.dup:
            attributes[OLD_HTTP_METHOD] = method
            attributes[OLD_HTTP_SCHEME] = scheme
            attributes[OLD_HTTP_TARGET] = f"{path}?{query}" if query else path
            if address:
                attributes[OLD_NET_HOST_NAME] = address
                if port is not None:
                    attributes[OLD_NET_HOST_PORT] = port
            if user_agent:
                attributes[OLD_HTTP_USER_AGENT] = user_agent
            if protocol:
                attributes[OLD_HTTP_FLAVOR] = protocol
            if peer:
                attributes[OLD_NET_PEER_IP] = peer
            if forwarded:
                attributes[OLD_HTTP_CLIENT_IP] = forwarded
        if request_headers is not None:
            attributes.update(
                captured_headers(
                    HTTP_REQUEST_HEADER, config.capture_request, request_headers(), config.sanitize
                )
            )
        span = _state.tracer.start_known_span(
            name, parent, SpanKind.SERVER, attributes, root_trace_id=root_trace_id
        )
        return ServerRequest(config, integration, span, trace.set_span_in_context(span, parent), name)
    except Exception as exc:
        report(integration, exc)
        return None
