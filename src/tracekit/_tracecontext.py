"""W3C Trace Context: the ``traceparent`` / ``tracestate`` request headers and ``traceresponse``.

The propagator registered under the name ``tracecontext``. It follows the processing model
of W3C Trace Context Level 1 and Level 2 (https://www.w3.org/TR/trace-context-2/) where the
propagator in ``opentelemetry-api`` does not:

* several ``traceparent`` fields in one request make the header invalid (the trace restarts)
  instead of the first one being used;
* only the flags this version knows are read, for version ``00`` and for later versions
  alike: ``sampled`` (0x01) and ``random-trace-id`` (0x02); the other bits are set to zero,
  so they are never passed on;
* a valid ``tracestate`` is kept whatever its length (32 members of up to 256 + 256
  characters), rather than dropped above 8192 characters;
* ``tracestate`` keys follow Level 2's grammar (a lowercase letter or digit, then up to 255
  of ``a-z 0-9 _ - * / @``), and of a duplicated key the first member is kept (Level 2
  lets a vendor discard duplicates) where the API drops Level 2 keys one by one;
* a ``traceparent`` value ends at its last field: a trailing line feed makes it invalid;
* malformed headers are dropped silently: a client cannot fill the application's log.

What both agree on: version ``ff`` and any field that is not lowercase hex of the right
length restart the trace, as do an all-zero trace-id or parent-id; version ``00`` is
exactly 55 characters; a later version is read from its first four fields when the 55th
character ends the value or is a dash; spaces and tabs around the value are optional
whitespace; the ``tracestate`` is read only with a valid ``traceparent``, its fields are
combined, empty and whitespace-only members are skipped, and one invalid member or more
than 32 members drop the whole ``tracestate`` while the ``traceparent`` is still used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.span import DEFAULT_TRACE_STATE as _DEFAULT_TRACE_STATE

from tracekit import _compat

__all__ = [
    "KNOWN_FLAGS",
    "TraceContextPropagator",
    "format_traceparent",
    "parse_traceparent",
    "parse_tracestate",
]

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

#: ``sampled`` (Level 1) and ``random-trace-id`` (Level 2); every other bit is reserved.
KNOWN_FLAGS = 0x03
#: The longest ``traceparent`` read; longer values are treated as malformed.
MAX_TRACEPARENT_LENGTH = 512
MAX_TRACESTATE_MEMBERS = 32

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
# Level 2: key = ( lcalpha / DIGIT ) 0*255 ( keychar )
# keychar = lcalpha / DIGIT / "_" / "-"/ "*" / "/" / "@"
_KEY = r"[a-z0-9][a-z0-9_\-*/@]{0,255}"
# value = 0*255(chr) nblk-chr ; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E ; chr = %x20 / nblk-chr
_VALUE = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
_MEMBER = re.compile(f"({_KEY})=({_VALUE})")


def parse_traceparent(value: str) -> tuple[int, int, int] | None:
    """``(trace_id, parent_id, known flags)`` of a ``traceparent`` value, or ``None`` if invalid."""
    if len(value) > MAX_TRACEPARENT_LENGTH:
        return None
    value = value.strip(" \t")
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_hex, parent_hex, flags_hex = match.groups()
    if version == "ff":
        return None
    if len(value) != 55 and (version == "00" or value[55] != "-"):
        return None
    trace_id = int(trace_hex, 16)
    parent_id = int(parent_hex, 16)
    if not trace_id or not parent_id:
        return None
    return trace_id, parent_id, int(flags_hex, 16) & KNOWN_FLAGS


def parse_tracestate(fields: Iterable[str]) -> TraceState | None:
    """The ``tracestate`` carried by ``fields`` (one per header field), or ``None`` if invalid."""
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for field in fields:
        for member in field.split(","):
            member = member.strip(" \t")
            if not member:
                continue
            match = _MEMBER.fullmatch(member)
            if match is None:
                return None
            key, value = match.groups()
            if key in seen:  # Level 2: a duplicate key may be discarded; the first is kept
                continue
            if len(pairs) == MAX_TRACESTATE_MEMBERS:
                return None
            seen.add(key)
            pairs.append((key, value))
    return _compat.trace_state(pairs)


def format_traceparent(span_context: SpanContext) -> str:
    """The version ``00`` header value (``traceparent`` or ``traceresponse``) for ``span_context``."""
    # A SpanContext is the tuple (trace_id, span_id, is_remote, trace_flags, trace_state,
    # is_valid): unpacked, it costs no call per field (tests/test_tracecontext.py pins it).
    trace_id, span_id, _, flags, _, _ = span_context
    # printf-style: about 40% cheaper than the f-string's three format specs.
    return "00-%032x-%016x-%02x" % (trace_id, span_id, flags & KNOWN_FLAGS)  # noqa: UP031


#: The last tracestate formatted, and its header value: the spans of a trace share one
#: tracestate object, and every root a ratio sampler samples shares its ``ot=th:`` one.
_last_tracestate: tuple[object, str] = (None, "")


def _tracestate_header(state: TraceState) -> str:
    """``state.to_header()``, formatted once for a run of spans that share ``state`` (it is immutable)."""
    global _last_tracestate
    last, header = _last_tracestate
    if state is not last:
        header = state.to_header()
        _last_tracestate = (state, header)
    return header


class TraceContextPropagator(TextMapPropagator):
    """``traceparent`` and ``tracestate``, extracted and injected as W3C Trace Context specifies."""

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        if context is None:
            context = Context()
        fields = getter.get(carrier, TRACEPARENT)
        if not fields or len(fields) != 1:
            return context
        parsed = parse_traceparent(fields[0])
        if parsed is None:
            return context
        trace_id, parent_id, flags = parsed
        states = getter.get(carrier, TRACESTATE)
        span_context = SpanContext(
            trace_id,
            parent_id,
            is_remote=True,
            trace_flags=TraceFlags(flags),
            trace_state=parse_tracestate(states) if states else None,
        )
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
        setter.set(carrier, TRACEPARENT, format_traceparent(span_context))
        if span_context.trace_state:
            setter.set(carrier, TRACESTATE, _tracestate_header(span_context.trace_state))

    @staticmethod
    def inject_span_context(carrier: dict[str, str], span_context: SpanContext) -> None:
        """:meth:`inject` of the context of a span at hand, into a plain ``dict`` carrier."""
        *_, state, valid = span_context  # see format_traceparent()
        if not valid:
            return
        carrier[TRACEPARENT] = format_traceparent(span_context)
        if state is not _DEFAULT_TRACE_STATE and state:
            carrier[TRACESTATE] = _tracestate_header(state)

    @property
    def fields(self) -> set[str]:
        return {TRACEPARENT, TRACESTATE}
