"""WSGI: one SERVER span per request, from the call of the application to the close of its body.

:class:`TracekitMiddleware` wraps any WSGI application by hand::

    from tracekit.integrations.wsgi import TracekitMiddleware
    application = TracekitMiddleware(application)

The flask and django integrations call :func:`traced` from their patches. Whichever of
these sees a request first makes its span; the others find the request marked in its
environ and step aside.

The span is current while the application runs and while its body is iterated (a
streamed body runs application code), and ends when the server closes the body, as PEP
3333 requires servers to do; an exception escaping the application or the iteration is
recorded, then re-raised unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.propagators.textmap import Getter

from tracekit._http import protocol_version
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

__all__ = ["TracekitMiddleware", "traced"]

Environ = MutableMapping[str, Any]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

_attach = otel_context.attach
_detach = otel_context.detach


class TracekitMiddleware:
    """Trace every request of ``app`` (any WSGI application).

    Excluded URLs come from ``OTEL_PYTHON_WSGI_EXCLUDED_URLS`` (else
    ``OTEL_PYTHON_EXCLUDED_URLS``, else the health-check paths). Spans are made while
    tracekit is configured; otherwise the middleware passes requests straight through.
    """

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        return traced("wsgi", "wsgi", self.app, environ, start_response)


def traced(
    integration: str, kind: str, app: WSGIApp, environ: Environ, start_response: StartResponse
) -> Iterable[bytes]:
    """``app(environ, start_response)`` under a SERVER span (or plainly: excluded, marked)."""
    if KEY in environ:
        return app(environ, start_response)
    config = server_config(kind)
    if config is None:
        return app(environ, start_response)
    request = None
    try:
        request = _begin(config, integration, environ)
    except Exception as exc:
        report(integration, exc)
    environ[KEY] = request
    if request is None:
        return app(environ, start_response)
    if request.span.is_recording() or request.config.traceresponse:
        start_response = _recording(request, integration, start_response)
    # else an unsampled trace's stand-in: nothing of the response to record
    token = _attach(request.context)
    try:
        body = app(environ, start_response)
    except BaseException as exc:
        request.failed(exc)
        request.finish()
        raise
    finally:
        _detach(token)
    return _Body(body, request)


def _recording(request: ServerRequest, integration: str, start_response: StartResponse) -> StartResponse:
    """``start_response`` that also records the status (and captures headers, adds traceresponse)."""

    def traced_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        try:
            request.status = int(status[:3])
            config = request.config
            if config.capture_response or config.traceresponse:
                value = request.response(headers)
                if value is not None:
                    headers = [*headers, ("traceresponse", value)]
        except Exception as exc:
            report(integration, exc)
        if exc_info is None:
            return start_response(status, headers)
        return start_response(status, headers, exc_info)

    return traced_start_response


class _Body:
    """The application's body: iterated with the span current; the span ends at ``close()``."""

    __slots__ = ("_body", "_iterator", "_request")

    def __init__(self, body: Iterable[bytes], request: ServerRequest) -> None:
        self._body = body
        self._iterator: Iterator[bytes] | None = None
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        if self._iterator is None:
            self._iterator = iter(self._body)
        return self

    def __next__(self) -> bytes:
        iterator = self._iterator
        if iterator is None:
            iterator = self._iterator = iter(self._body)
        token = _attach(self._request.context)
        try:
            return next(iterator)
        except StopIteration:
            raise
        except BaseException as exc:
            self._request.failed(exc)
            raise
        finally:
            _detach(token)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        except BaseException as exc:
            self._request.failed(exc)
            raise
        finally:
            self._request.finish()


_ENVIRON_NAMES: dict[str, str] = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}


def _environ_name(header: str) -> str:
    name = _ENVIRON_NAMES.get(header)
    if name is None:
        name = _ENVIRON_NAMES.setdefault(header, "HTTP_" + header.upper().replace("-", "_"))
    return name


class _EnvironGetter(Getter[Environ]):
    """Request headers from a WSGI environ (the server has combined repeated fields with commas)."""

    def get(self, carrier: Environ, key: str) -> list[str] | None:
        value = carrier.get(_environ_name(key.lower()))
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: Environ) -> list[str]:
        return [name[5:].lower().replace("_", "-") for name in carrier if name.startswith("HTTP_")]


_GETTER = _EnvironGetter()


def _request_headers(environ: Environ) -> Iterable[tuple[str, str]]:
    for name, value in list(environ.items()):
        if name.startswith("HTTP_"):
            yield name[5:].replace("_", "-"), value
        elif name in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            yield name.replace("_", "-"), value


def _text(value: str) -> str:
    # WSGI strings are bytes decoded as latin-1; URLs are UTF-8.
    return value if value.isascii() else value.encode("latin-1").decode("utf-8", "replace")


def _begin(config: ServerConfig, integration: str, environ: Environ) -> ServerRequest | None:
    path = _text(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")) or "/"
    scheme = environ.get("wsgi.url_scheme") or "http"
    host = environ.get("HTTP_HOST")
    if not host:
        name, port = environ.get("SERVER_NAME"), environ.get("SERVER_PORT")
        host = f"{name}:{port}" if name and port else name
    query = environ.get("QUERY_STRING") or ""
    if config.excluded is None:
        if path in config.excluded_paths:
            return None
    elif excluded(config, scheme, host, path, query):
        return None
    textmap = config.propagator()
    parent = ROOT
    for name in config.environ_fields:
        if name in environ:
            parent = textmap.extract(environ, getter=_GETTER)
            break
    method = environ.get("REQUEST_METHOD") or "GET"
    request, root_trace_id = skipped(config, integration, parent, method)
    if request is not None:
        return request
    forwarded = environ.get("HTTP_FORWARDED")
    x_forwarded_for = environ.get("HTTP_X_FORWARDED_FOR")
    return start(
        config,
        integration,
        parent,
        method,
        scheme,
        path,
        query,
        host,
        environ.get("REMOTE_ADDR") or None,
        forwarded_for(forwarded, x_forwarded_for) if forwarded or x_forwarded_for else None,
        environ.get("HTTP_USER_AGENT"),
        protocol_version(environ.get("SERVER_PROTOCOL")),
        (lambda: _request_headers(environ)) if config.capture_request else None,
        root_trace_id,
    )
