"""When not to make a span: OpenTelemetry's suppression keys and nested layers.

* OpenTelemetry's suppress-instrumentation context key (set by span processors around
  an export, so an exporter's own HTTP requests are not traced) and its HTTP-only
  variant turn an integration into a plain pass-through.
* A :class:`Layer` marks "a span of this kind is already being made for this call": a
  library built on another (requests on urllib3, an ORM on a DB-API driver) produces one
  span, made by the outermost integration, because the inner one sees its layer active.

Layers live in a :class:`contextvars.ContextVar`, so they follow asyncio tasks, and are
deliberately not carried into new threads.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

from opentelemetry import context as otel_context

__all__ = [
    "DB_CLIENT",
    "HTTP_CLIENT",
    "SUPPRESS_HTTP_INSTRUMENTATION_KEY",
    "SUPPRESS_INSTRUMENTATION_KEY",
    "Layer",
    "http_suppressed",
    "instrumentation_suppressed",
]

#: The context keys themselves, for hot paths that already hold the current context.
SUPPRESS_INSTRUMENTATION_KEY: str = getattr(
    otel_context, "_SUPPRESS_INSTRUMENTATION_KEY", "suppress_instrumentation"
)
SUPPRESS_HTTP_INSTRUMENTATION_KEY: str = getattr(
    otel_context, "_SUPPRESS_HTTP_INSTRUMENTATION_KEY", "suppress_http_instrumentation"
)
_SUPPRESS = SUPPRESS_INSTRUMENTATION_KEY
_SUPPRESS_HTTP = SUPPRESS_HTTP_INSTRUMENTATION_KEY
_get_value = otel_context.get_value


def instrumentation_suppressed() -> bool:
    """Whether the current context asks instrumentation to stay silent."""
    return bool(_get_value(_SUPPRESS))


def http_suppressed() -> bool:
    """Whether the current context asks HTTP instrumentation (or all of it) to stay silent."""
    return bool(_get_value(_SUPPRESS) or _get_value(_SUPPRESS_HTTP))


class Layer:
    """A kind of span of which only the outermost is made within one call."""

    __slots__ = ("name", "var")

    def __init__(self, name: str) -> None:
        self.name = name
        #: True while the layer is active; hot paths bind its ``get`` / ``set`` / ``reset`` once.
        self.var: ContextVar[bool] = ContextVar(f"tracekit.layer.{name}", default=False)

    def active(self) -> bool:
        """Whether an outer integration already handles this call."""
        return self.var.get()

    def enter(self) -> Token[bool]:
        """Mark the layer active until :meth:`exit` is called with the returned token."""
        return self.var.set(True)

    def exit(self, token: Token[bool]) -> None:
        self.var.reset(token)


#: HTTP client requests: requests over urllib3 is one span.
HTTP_CLIENT = Layer("http.client")
#: Database client calls: SQLAlchemy over a DB-API driver (or a driver method calling another) is one span.
DB_CLIENT = Layer("db.client")
