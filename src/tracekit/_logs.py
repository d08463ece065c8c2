"""Trace ids on log lines: a chained ``logging`` record factory and a structlog processor.

After ``configure()`` every :class:`logging.LogRecord` carries ``trace_id`` (32 hex digits),
``span_id`` (16 hex digits), ``trace_sampled`` and ``service_name``. Outside a span the ids
are empty strings and ``trace_sampled`` is ``False``, so a format string such as
``"%(message)s trace_id=%(trace_id)s"`` always works. The same values are also set under
the names OpenTelemetry's logging instrumentation uses (``otelTraceID``, ``otelSpanID``,
``otelTraceSampled``, ``otelServiceName``), whose format strings then work unchanged.

The factory is put in front of whatever factory was installed before (the application's,
another library's, or the standard one) and calls it first. On shutdown it is taken out
again when it is still the outermost factory; when something has since been chained in
front of it, it stays in the chain as a pass-through, so that factory keeps working.

A value passed for one of these names with ``extra=`` (``log.info("...", extra={"trace_id":
...})``) wins: the standard library refuses an ``extra`` key that the record already has,
so the factory leaves out the names the caller is about to set itself.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

from opentelemetry import trace

from tracekit import _state
from tracekit._safety import report

__all__ = ["add_trace_context", "install", "trace_fields", "uninstall"]

_INTEGRATION = "log correlation"
_MAKE_RECORD = logging.Logger.makeRecord.__code__

_service: tuple[object, str] = (None, "")


def _service_name() -> str:
    """``service.name`` of the spans tracekit makes; ``""`` before ``configure()``."""
    global _service
    tracing = _state.current
    cached = _service
    if cached[0] is tracing:
        return cached[1]
    name = ""
    if tracing is not None:
        if tracing.provider is not None:
            name = str(tracing.provider.resource.attributes.get("service.name", ""))
        else:
            name = tracing.settings.service_name or ""
    _service = (tracing, name)
    return name


def trace_fields() -> dict[str, Any]:
    """``trace_id``, ``span_id``, ``trace_sampled`` and ``service_name`` of the current span."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        return {
            "trace_id": format(context.trace_id, "032x"),
            "span_id": format(context.span_id, "016x"),
            "trace_sampled": context.trace_flags.sampled,
            "service_name": _service_name(),
        }
    return {"trace_id": "", "span_id": "", "trace_sampled": False, "service_name": _service_name()}


def _record_fields() -> dict[str, Any]:
    """:func:`trace_fields`, and the same under the names OpenTelemetry's logging
    instrumentation gives them (``otelTraceID``, ``otelSpanID``, ``otelTraceSampled``,
    ``otelServiceName``; ``"0"`` for the ids outside a span), so log formats written for it
    keep working."""
    fields = trace_fields()
    fields["otelTraceID"] = fields["trace_id"] or "0"
    fields["otelSpanID"] = fields["span_id"] or "0"
    fields["otelTraceSampled"] = fields["trace_sampled"]
    fields["otelServiceName"] = fields["service_name"]
    return fields


class _RecordFactory:
    """Calls the factory installed before it, then adds :func:`trace_fields` to the record."""

    __slots__ = ("active", "previous")

    def __init__(self, previous: Callable[..., logging.LogRecord]) -> None:
        self.previous = previous
        self.active = True

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.previous(*args, **kwargs)
        if self.active:
            try:
                fields = _record_fields()
                caller = sys._getframe(1)
                if caller.f_code is _MAKE_RECORD:
                    for key in caller.f_locals.get("extra") or ():
                        fields.pop(key, None)
                record.__dict__.update(fields)
            except Exception as exc:
                report(_INTEGRATION, exc)
        return record


def install() -> None:
    """Chain the trace-id record factory in front of the current one (once)."""
    if _state.log_record_factory is not None:
        return
    factory = _RecordFactory(logging.getLogRecordFactory())
    logging.setLogRecordFactory(factory)
    _state.log_record_factory = factory


def uninstall() -> None:
    """Take the factory out again, or make it a pass-through if another was chained after it."""
    factory = _state.log_record_factory
    if not isinstance(factory, _RecordFactory):
        return
    _state.log_record_factory = None
    factory.active = False
    if logging.getLogRecordFactory() is factory:
        logging.setLogRecordFactory(factory.previous)


def add_trace_context(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: add ``trace_id``, ``span_id``, ``trace_sampled``, ``service_name``.

    Add it to structlog's processor chain before the renderer::

        structlog.configure(processors=[tracekit.logs.add_trace_context, ..., JSONRenderer()])

    Keys the event already has are left alone. Outside a span the ids are empty strings.
    """
    try:
        for key, value in trace_fields().items():
            event_dict.setdefault(key, value)
    except Exception as exc:
        report(_INTEGRATION, exc)
    return event_dict
