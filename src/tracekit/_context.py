"""The current OpenTelemetry context, read as cheaply as the runtime allows.

``opentelemetry.context.get_current()`` goes through two Python calls to read one context
variable. Every integration reads the context once per request, query or message, so
:func:`current_context` is that variable's own ``get`` when the API's runtime context is the
standard contextvars one (always, unless ``OTEL_PYTHON_CONTEXT`` names another), and the
API's function otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

__all__ = ["current_context"]


def _reader() -> Callable[[], Context]:
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None)
    if type(runtime) is ContextVarsRuntimeContext and isinstance(variable, ContextVar):
        return variable.get
    return otel_context.get_current


#: ``opentelemetry.context.get_current``, without the calls around the context variable.
current_context: Callable[[], Context] = _reader()
