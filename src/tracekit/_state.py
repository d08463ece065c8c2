"""The one home of tracekit's process-wide mutable state.

Everything that changes when tracing is configured or shut down lives here, so there is
exactly one place to read it and one ``reset()`` that puts the process back as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context

if TYPE_CHECKING:
    from tracekit._configure import Tracing
    from tracekit._tracer import Tracer

__all__ = ["Unconfigured", "current", "integration_status", "tracer", "wanted_integrations"]


class Unconfigured(trace.NoOpTracer):
    """The tracer before ``configure()``: the API's no-op tracer, with tracekit's extra method."""

    def start_known_span(
        self,
        name: str,
        context: Context | None,
        kind: trace.SpanKind,
        attributes: Mapping[str, Any],
        links: Sequence[trace.Link] | None = (),
        start_time: int | None = None,
        root_trace_id: int = 0,
    ) -> trace.Span:
        return trace.INVALID_SPAN

    def set_known_attributes(self, span: trace.Span, attributes: Mapping[str, Any]) -> None:
        span.set_attributes(attributes)

    def dropped_child(self, context: Context | None = None) -> trace.Span | None:
        return None

    def dropped_root(self, context: Context | None = None) -> tuple[int, trace.Span | None]:
        return 0, None

    def drops_child_of(self, parent: trace.NonRecordingSpan) -> bool:
        return False


#: The handle returned by the first successful ``configure()``; ``None`` before and after shutdown.
current: Tracing | None = None

#: tracekit's own tracer (:class:`tracekit._tracer.Tracer`). Until ``configure()`` runs it is
#: a no-op tracer, so manual spans made at import time cost next to nothing and never fail.
tracer: Tracer | Unconfigured = Unconfigured()

#: The log record factory that ``configure()`` chained in front of the application's (it
#: puts trace ids on records); ``None`` when log correlation is not installed.
log_record_factory: Callable[..., logging.LogRecord] | None = None

#: Names of the integrations asked for with ``instrument()`` and not since uninstrumented;
#: a post-import hook patches a library only while its integration's name is in here.
wanted_integrations: set[str] = set()

#: What happened to each integration, for ``tracekit integrations``: name -> (state, detail).
#: States: ``waiting`` (for its library's import), ``patched``, ``skipped``, ``uninstrumented``.
integration_status: dict[str, tuple[str, str]] = {}

#: Whether ``current`` was configured by ``tracekit run`` (from the environment, at start-up)
#: rather than by the application's own ``configure()`` call.
launched: bool = False
