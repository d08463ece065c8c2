"""What every HTTP client integration shares: one span per request sent on the wire.

An integration describes its library with a few small functions (what the request is,
how to add headers to it, what the response says) and gets an :class:`HttpClient`.
Its sync and async wrappers are then the same four lines around ``wrapped(...)``
(:func:`sync_send`, :func:`async_send`); everything else is written once here:

* no span while OpenTelemetry's suppression keys are set, nor under an outer HTTP
  client span (requests over urllib3 is one span);
* span name ``{http.request.method}`` (``HTTP`` for unknown methods), kind CLIENT, the
  stable attributes (and the old ones under ``http/dup``), ``url.full`` redacted;
* the configured propagators' headers added to the request (also for excluded URLs);
* ERROR for status >= 400 (``error.type`` the code) and for exceptions (``error.type``
  the qualified class name, an ``exception`` event), the exception re-raised unchanged;
* ``http.request.resend_count`` for redirects and retries inside one library call,
  counted within a :func:`sync_resend_scope` / :func:`async_resend_scope`.

The span ends when the library hands the response back, that is once the status line
and headers are in; reading a streamed body is not part of the span.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar, Token
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tracekit import _state
from tracekit._context import current_context
from tracekit._propagation import span_injector
from tracekit._redaction import captured_headers, header_sanitizer, redact_url
from tracekit._safety import report
from tracekit._semconv import (
    ERROR_TYPE,
    HTTP_REQUEST_HEADER,
    HTTP_REQUEST_METHOD,
    HTTP_REQUEST_METHOD_ORIGINAL,
    HTTP_REQUEST_RESEND_COUNT,
    HTTP_RESPONSE_HEADER,
    HTTP_RESPONSE_STATUS_CODE,
    NETWORK_PROTOCOL_VERSION,
    OLD_HTTP_FLAVOR,
    OLD_HTTP_METHOD,
    OLD_HTTP_STATUS_CODE,
    OLD_HTTP_URL,
    OLD_NET_PEER_NAME,
    OLD_NET_PEER_PORT,
    SERVER_ADDRESS,
    SERVER_PORT,
    URL_FULL,
    http_method,
    qualified_name,
)
from tracekit._spans import record_exception
from tracekit._suppression import (
    HTTP_CLIENT,
    SUPPRESS_HTTP_INSTRUMENTATION_KEY,
    SUPPRESS_INSTRUMENTATION_KEY,
)

__all__ = [
    "Call",
    "HttpClient",
    "RequestInfo",
    "add_headers",
    "argument",
    "async_resend_scope",
    "async_send",
    "default_port",
    "protocol_version",
    "split_authority",
    "split_origin",
    "sync_resend_scope",
    "sync_send",
]

#: ``(method, url, server.address, server.port)`` of the request about to be sent.
RequestInfo = tuple[str, str, str, int | None]
#: ``(status code, network.protocol.version or None)`` of a response.
ResponseInfo = tuple[int, str | None]

Args = tuple[Any, ...]
Kwargs = dict[str, Any]
#: What :meth:`HttpClient.start` hands the wrapper: ``(span, layer token, config, args, kwargs)``.
Call = tuple["trace.Span | None", Token[bool], "_Config", Args, Kwargs]
Describe = Callable[[Any, Args, Kwargs], RequestInfo]
Inject = Callable[[Any, Args, Kwargs, dict[str, str]], tuple[Args, Kwargs]]
RequestHeaders = Callable[[Any, Args, Kwargs], Iterable[tuple[str, str]]]
ResponseHeaders = Callable[[Any], Iterable[tuple[str, str]]]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_VERSIONS = {
    "HTTP/1.0": "1.0",
    "HTTP/1.1": "1.1",
    "HTTP/2": "2",
    "HTTP/2.0": "2",
    "HTTP/3": "3",
    "HTTP/3.0": "3",
    10: "1.0",
    11: "1.1",
    20: "2",
    9: "0.9",
    (1, 0): "1.0",
    (1, 1): "1.1",
    (2, 0): "2",
    (3, 0): "3",
}


def argument(args: Args, kwargs: Kwargs, index: int, name: str) -> Any:
    """The wrapped call's argument at position ``index``, else its keyword argument ``name``."""
    return args[index] if len(args) > index else kwargs[name]


def add_headers(headers: Any, carrier: dict[str, str]) -> None:
    """Set the injected ``carrier`` fields on a request's own mutable ``headers`` mapping.

    Item assignment, one field at a time: much cheaper than the libraries' ``update()``
    (httpx builds a ``Headers`` first; a ``MutableMapping.update`` pays an ABC check).
    """
    for name, value in carrier.items():
        headers[name] = value


def default_port(scheme: str) -> int | None:
    """80 for http, 443 for https."""
    return _DEFAULT_PORTS.get(scheme.lower())


def split_origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of an absolute URL; the port defaults from the scheme.

    Plain string work, cheaper than :func:`urllib.parse.urlsplit` on the request path.
    IPv6 hosts come back without brackets.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        return "", "", None
    end = len(rest)
    for stop in "/?#":
        position = rest.find(stop)
        if 0 <= position < end:
            end = position
    authority = rest[rest.rfind("@", 0, end) + 1 : end]
    if authority.startswith("["):
        host, port = split_authority(authority, scheme)
        return scheme, host, port
    host, _, port_text = authority.partition(":")
    return scheme, host, int(port_text) if port_text.isdigit() else _DEFAULT_PORTS.get(scheme.lower())


def split_authority(authority: str, scheme: str) -> tuple[str, int | None]:
    """``(host, port)`` of ``host[:port]`` (a URL authority, a Host header); port defaults by scheme.

    IPv6 hosts come back without brackets.
    """
    if authority.startswith("["):
        host, _, tail = authority[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = authority.partition(":")
    return host, int(port_text) if port_text.isdigit() else default_port(scheme)


def protocol_version(value: object) -> str | None:
    """``network.protocol.version`` from ``"HTTP/1.1"``, ``b"HTTP/2"`` or ``11``."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return _VERSIONS.get(value)


class _Config:
    """What the settings say about HTTP client spans, resolved once per configuration."""

    __slots__ = (
        "capture_request",
        "capture_response",
        "dup",
        "excluded",
        "inject",
        "inject_span",
        "sanitize",
    )

    def __init__(self, integration: str, settings: Any) -> None:
        # Imported here, once configure() has loaded it safely (see tracekit._propagation).
        from opentelemetry import propagate

        self.inject = propagate.inject
        self.inject_span = span_injector()
        patterns = getattr(settings, f"{integration}_excluded_urls", ()) or settings.excluded_urls
        self.excluded = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None
        self.capture_request = tuple(
            dict.fromkeys(h.lower() for h in settings.http_capture_headers_client_request)
        )
        self.capture_response = tuple(
            dict.fromkeys(h.lower() for h in settings.http_capture_headers_client_response)
        )
        self.sanitize = header_sanitizer(settings.http_capture_headers_sanitize_fields)
        self.dup = "http/dup" in settings.semconv_opt_in


# Bound once: the per-request paths below read module globals, not attribute chains.
_get_current = current_context
_set_span_in_context = trace.set_span_in_context
_in_layer = HTTP_CLIENT.var.get
_enter_layer = HTTP_CLIENT.var.set
_leave_layer = HTTP_CLIENT.var.reset
_CLIENT = SpanKind.CLIENT

_attempts: ContextVar[list[int] | None] = ContextVar("tracekit.http.attempts", default=None)


class HttpClient:
    """The HTTP client span logic, bound to one integration's description of its library."""

    __slots__ = (
        "_config",
        "_config_for",
        "describe",
        "inject",
        "integration",
        "request_headers",
        "response_headers",
        "response_info",
    )

    def __init__(
        self,
        integration: str,
        *,
        describe: Describe,
        inject: Inject,
        response_info: Callable[[Any], ResponseInfo],
        request_headers: RequestHeaders,
        response_headers: ResponseHeaders,
    ) -> None:
        self.integration = integration
        self.describe = describe
        self.inject = inject
        self.response_info = response_info
        self.request_headers = request_headers
        self.response_headers = response_headers
        self._config: _Config | None = None
        self._config_for: object = None

    def _configuration(self, current: Any) -> _Config | None:
        if self._config_for is not current:
            self._config = _Config(self.integration, current.settings) if current.enabled else None
            self._config_for = current
        return self._config

    def start(self, instance: Any, args: Args, kwargs: Kwargs) -> Call | None:
        """Begin a request: ``None`` means "call the library unchanged".

        Else ``(span, token, config, args, kwargs)``: call the library with these ``args``
        and ``kwargs``, then hand the rest to :meth:`ok`, or to :meth:`error` if it raised.
        ``span`` is ``None`` for an excluded URL and in an unsampled trace whose children are
        dropped (the current context is still injected).
        """
        current = _state.current
        if current is None or _in_layer():
            return None
        context = _get_current()
        if context.get(SUPPRESS_INSTRUMENTATION_KEY) or context.get(SUPPRESS_HTTP_INSTRUMENTATION_KEY):
            return None
        span = None
        token = None
        try:
            config = self._config if self._config_for is current else self._configuration(current)
            if config is None:
                return None
            carrier: dict[str, str] = {}
            dropped = _state.tracer.dropped_child(context)
            if dropped is not None:  # an unsampled trace: its context is passed on, no span made
                config.inject_span(carrier, dropped, context)
                if carrier:
                    args, kwargs = self.inject(instance, args, kwargs, carrier)
                return None, _enter_layer(True), config, args, kwargs
            method, url, host, port = self.describe(instance, args, kwargs)
            counter = _attempts.get()
            if counter is None:
                resend = 0
            else:
                resend = counter[0]
                counter[0] = resend + 1
            if config.excluded is not None and config.excluded.search(url):
                config.inject(carrier)
            else:
                name, value, original = http_method(method)
                full = redact_url(url)
                attributes: dict[str, Any] = {
                    HTTP_REQUEST_METHOD: value,
                    SERVER_ADDRESS: host,
                    URL_FULL: full,
                }
                if port is not None:
                    attributes[SERVER_PORT] = port
                if original is not None:
                    attributes[HTTP_REQUEST_METHOD_ORIGINAL] = original
                if resend:
                    attributes[HTTP_REQUEST_RESEND_COUNT] = resend
                if config.dup:
                    attributes[OLD_HTTP_METHOD] = method
                    attributes[OLD_HTTP_URL] = full
                    attributes[OLD_NET_PEER_NAME] = host
                    if port is not None:
                        attributes[OLD_NET_PEER_PORT] = port
                if config.capture_request:
                    attributes.update(
                        captured_headers(
                            HTTP_REQUEST_HEADER,
                            config.capture_request,
                            self.request_headers(instance, args, kwargs),
                            config.sanitize,
                        )
                    )
                # The context read above is the parent: the SDK need not look it up again.
                span = _state.tracer.start_known_span(name, context, _CLIENT, attributes)
                config.inject_span(carrier, span, context)
            if carrier:
                args, kwargs = self.inject(instance, args, kwargs, carrier)
            token = _enter_layer(True)
            return span, token, config, args, kwargs
        except Exception as exc:
            report(self.integration, exc)
            if token is not None:
                _leave(token)
            if span is not None:
                span.end()
            return None

    def ok(self, span: trace.Span | None, token: Token[bool], config: _Config, response: Any) -> None:
        """The library returned ``response``: record its status and end the span."""
        try:  # noqa: SIM105 - _leave() in line: this runs for every request
            _leave_layer(token)
        except ValueError:
            pass
        if span is None:
            return
        try:
            if span.is_recording():
                status, version = self.response_info(response)
                attributes: dict[str, Any] = {HTTP_RESPONSE_STATUS_CODE: status}
                if version is not None:
                    attributes[NETWORK_PROTOCOL_VERSION] = version
                if config.dup or config.capture_response or status >= 400:
                    if config.dup:
                        attributes[OLD_HTTP_STATUS_CODE] = status
                        if version is not None:
                            attributes[OLD_HTTP_FLAVOR] = version
                    if config.capture_response:
                        attributes.update(
                            captured_headers(
                                HTTP_RESPONSE_HEADER,
                                config.capture_response,
                                self.response_headers(response),
                                config.sanitize,
                            )
                        )
                    if status >= 400:
                        attributes[ERROR_TYPE] = str(status)
                        span.set_status(Status(StatusCode.ERROR))
                _state.tracer.set_known_attributes(span, attributes)
        except Exception as exc:
            report(self.integration, exc)
        span.end()

    def error(self, span: trace.Span | None, token: Token[bool], exc: BaseException) -> None:
        """The library raised ``exc`` (which the caller re-raises): record it and end the span."""
        _leave(token)
        if span is None:
            return
        try:
            record_exception(span, exc, qualified_name(type(exc)))
        except Exception as internal:
            report(self.integration, internal)
        span.end()


def _leave(token: Token[bool]) -> None:
    try:  # noqa: SIM105 - contextlib.suppress costs an object per request
        _leave_layer(token)
    except ValueError:  # reset from another context: nothing to undo there
        pass


def sync_send(client: HttpClient) -> Callable[[Any, Any, Args, Kwargs], Any]:
    """A wrapper making one span around a synchronous wire request.

    Integrations declare their synchronous targets :class:`~tracekit._patch.Plain`: a plain
    function costs about half what a wrapt wrapper does per call. Coroutine functions stay
    with wrapt, whose proxy keeps ``inspect.iscoroutinefunction`` true.
    """

    start, ok, error = client.start, client.ok, client.error

    def send(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        call = start(instance, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        span, token, config, args, kwargs = call
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as exc:
            error(span, token, exc)
            raise
        ok(span, token, config, response)
        return response

    return send


def async_send(client: HttpClient) -> Callable[[Any, Any, Args, Kwargs], Any]:
    """:func:`sync_send` for a coroutine function."""

    start, ok, error = client.start, client.ok, client.error

    async def send(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        call = start(instance, args, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        span, token, config, args, kwargs = call
        try:
            response = await wrapped(*args, **kwargs)
        except BaseException as exc:
            error(span, token, exc)
            raise
        ok(span, token, config, response)
        return response

    return send


def sync_resend_scope(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """Around a library call that may send several requests: number them for resend_count."""
    if _state.current is None or _attempts.get() is not None:
        return wrapped(*args, **kwargs)
    token = _attempts.set([0])
    try:
        return wrapped(*args, **kwargs)
    finally:
        _attempts.reset(token)


def async_resend_scope(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """:func:`sync_resend_scope` for a coroutine function.

    Where no request will be numbered (tracekit off, a scope already open, an unsampled
    trace whose spans are not made) the library's own coroutine is handed back, with no
    coroutine of tracekit's around it.
    """
    if _state.current is None or _attempts.get() is not None or _state.tracer.dropped_child():
        return wrapped(*args, **kwargs)
    return _numbered(wrapped(*args, **kwargs))


async def _numbered(call: Awaitable[Any]) -> Any:
    token = _attempts.set([0])
    try:
        return await call
    finally:
        _attempts.reset(token)
