"""B3: the ``b3`` single header and the ``X-B3-*`` headers (https://github.com/openzipkin/b3-propagation).

The propagators registered as ``b3`` and ``b3multi``. They read and write what the official
``opentelemetry-propagator-b3`` reads and writes, and reject what it wrongly accepts:

* ids are ASCII hex: the official patterns use ``\\d``, which also matches other scripts'
  digits (``"\\u0661"`` would be read as 1);
* a header that does not parse leaves the context as it was, so a later format cannot erase
  a context an earlier one extracted (the official one can store an invalid span context).

Both read either form, the single header first; a sampling state of ``1``, ``true``,
``True`` or ``d``, or ``X-B3-Flags: 1``, means sampled. An id of 16 hex digits is a 64-bit
trace id. Written: ``{trace-id}-{span-id}-{1|0|d}``, or the trace id and span id headers with
``X-B3-Sampled`` (or ``X-B3-Flags: 1`` for debug). One pass over the headers, no second parse.

Two B3 states OpenTelemetry's trace flags cannot hold are kept as B3 asks. The debug flag
(``d``, ``X-B3-Flags: 1``) means sampled and is sent on with the same trace (the
OpenTelemetry specification: it MUST be preserved), kept in the context next to the trace it
belongs to. A bare deny (``b3: 0``, no ids) starts a trace that is not sampled: the
receiver extracts a remote parent with fresh ids and the unsampled flag, so the parent-based
samplers drop it and downstream services receive the deny with ids.
"""

from __future__ import annotations

import random
import re

from opentelemetry import trace
from opentelemetry.context import Context, create_key, get_value, set_value
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from tracekit._propagation import first_value

__all__ = ["READ_FIELDS", "B3MultiFormat", "B3SingleFormat"]

SINGLE = "b3"
TRACE_ID = "x-b3-traceid"
SPAN_ID = "x-b3-spanid"
SAMPLED = "x-b3-sampled"
FLAGS = "x-b3-flags"

#: The header names both B3 propagators read: either encoding, whichever they write.
READ_FIELDS = frozenset({SINGLE, TRACE_ID, SPAN_ID, SAMPLED, FLAGS})

#: The trace id of the B3 trace whose debug flag was received, in the contexts under it.
_DEBUG_KEY = create_key("tracekit.b3.debug")

_TRACE_ID = re.compile(r"[0-9a-fA-F]{16}|[0-9a-fA-F]{32}")
_SPAN_ID = re.compile(r"[0-9a-fA-F]{16}")
_SAMPLED_VALUES = frozenset({"1", "True", "true", "d"})
_SAMPLED_FLAGS = TraceFlags(TraceFlags.SAMPLED)
_UNSAMPLED_FLAGS = TraceFlags(TraceFlags.DEFAULT)


class B3MultiFormat(TextMapPropagator):
    """Reads either B3 form; writes ``X-B3-TraceId``, ``X-B3-SpanId`` and ``X-B3-Sampled``."""

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        if context is None:
            context = Context()
        single = first_value(getter.get(carrier, SINGLE))
        trace_id = first_value(getter.get(carrier, TRACE_ID))
        span_id = first_value(getter.get(carrier, SPAN_ID))
        if any(value is not None and not value.isascii() for value in (single, trace_id, span_id)):
            return context
        flags = None
        if single:
            fields = single.split("-", 4)
            sampled: str | None = "1"
            if len(fields) == 1:
                if fields[0] == "0":
                    return _denied(context)
                trace_id, span_id, sampled = None, None, fields[0]
            elif len(fields) in (2, 3, 4):
                trace_id, span_id = fields[0], fields[1]
                if len(fields) > 2:
                    sampled = fields[2]
            else:
                return context
        else:
            sampled = first_value(getter.get(carrier, SAMPLED))
            flags = first_value(getter.get(carrier, FLAGS))
        if (
            not trace_id
            or not span_id
            or not _TRACE_ID.fullmatch(trace_id)
            or not _SPAN_ID.fullmatch(span_id)
        ):
            return context
        parsed_trace, parsed_span = int(trace_id, 16), int(span_id, 16)
        if not parsed_trace or not parsed_span:
            return context
        debug = sampled == "d" or flags == "1"
        sampled_flags = _SAMPLED_FLAGS if debug or sampled in _SAMPLED_VALUES else _UNSAMPLED_FLAGS
        span_context = SpanContext(parsed_trace, parsed_span, True, sampled_flags, TraceState())
        if debug:
            context = set_value(_DEBUG_KEY, parsed_trace, context)
        return trace.set_span_in_context(NonRecordingSpan(span_context), context)

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        span_context = trace.get_current_span(context).get_span_context()
        if not span_context.is_valid:
            return
        setter.set(carrier, TRACE_ID, f"{span_context.trace_id:032x}")
        setter.set(carrier, SPAN_ID, f"{span_context.span_id:016x}")
        if _debug(span_context, context):
            setter.set(carrier, FLAGS, "1")  # debug implies accept: no X-B3-Sampled with it
        else:
            setter.set(carrier, SAMPLED, "1" if span_context.trace_flags.sampled else "0")

    @property
    def fields(self) -> set[str]:
        return {TRACE_ID, SPAN_ID, SAMPLED}


class B3SingleFormat(B3MultiFormat):
    """Reads either B3 form; writes the ``b3`` single header."""

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        span_context = trace.get_current_span(context).get_span_context()
        if not span_context.is_valid:
            return
        sampled = _single_state(span_context, context)
        setter.set(carrier, SINGLE, f"{span_context.trace_id:032x}-{span_context.span_id:016x}-{sampled}")

    @property
    def fields(self) -> set[str]:
        return {SINGLE}


def _debug(span_context: SpanContext, context: Context | None) -> bool:
    """Whether ``span_context`` belongs to a trace received with the B3 debug flag."""
    return bool(span_context.trace_flags.sampled) and get_value(_DEBUG_KEY, context) == span_context.trace_id


def _single_state(span_context: SpanContext, context: Context | None) -> str:
    """The sampling state the single header sends: ``d`` (debug), ``1`` or ``0``."""
    if _debug(span_context, context):
        return "d"
    return "1" if span_context.trace_flags.sampled else "0"


def _denied(context: Context) -> Context:
    """``context`` under a remote parent that is not sampled, for a bare B3 deny (``b3: 0``)."""
    trace_id = random.getrandbits(128) or 1
    span_id = random.getrandbits(64) or 1
    span_context = SpanContext(trace_id, span_id, True, _UNSAMPLED_FLAGS, TraceState())
    return trace.set_span_in_context(NonRecordingSpan(span_context), context)
