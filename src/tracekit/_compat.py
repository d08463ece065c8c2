"""OpenTelemetry's private parts that tracekit's process lifecycle relies on, each with its fallback.

Every name here is pinned by a contract test (``tests/test_compat.py``): an SDK release that
renames or reshapes one fails that test, and tracekit falls back to the public behaviour
described next to the name rather than diverging.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import TraceState

__all__ = [
    "SpanFields",
    "TracerProvider",
    "instrumented_by_contrib",
    "replace_resource_attributes",
    "span_fields_reader",
    "trace_state",
]


class TracerProvider(sdk_trace.TracerProvider):
    """The SDK's tracer provider, minus the SDK's own work in a forked child.

    From opentelemetry-sdk 1.4x on, the provider registers an after-fork hook
    (``_handle_fork``) that re-runs the process resource detectors through a
    ``concurrent.futures`` thread pool in the child. A child forked after the application
    imported ``concurrent.futures.thread`` waits there forever: that module's own
    after-fork handler, which releases the pool's global lock, runs after the provider's.
    tracekit refreshes the resource itself, lock-free (``tracekit._sdk``), so here the hook
    only replaces the lock the SDK guards its tracers with. On an SDK without the hook the
    override is never called, and nothing is lost.
    """

    def _handle_fork(self) -> None:
        if hasattr(self, "_tracers_lock"):
            self._tracers_lock = threading.Lock()


def replace_resource_attributes(resource: Resource, attributes: Mapping[str, Any]) -> bool:
    """Give ``resource`` these attributes, in place; ``False`` where the SDK does not allow it.

    The provider, its tracers and the spans they made share one resource object, so a
    forked child changes that object rather than hunting for every holder. The fallback
    (``False``) leaves the parent's values: spans still arrive, labelled with the parent's
    ``process.pid``.
    """
    if not isinstance(getattr(resource, "_attributes", None), Mapping):
        return False
    resource._attributes = Resource(dict(attributes), resource.schema_url)._attributes
    return True


#: What the OTLP encoder reads of a finished span, in this order: context, parent, name,
#: kind, start time, end time, attributes (a mapping), dropped attribute count, status.
SpanFields = tuple[Any, Any, str, Any, Any, Any, Mapping[str, Any], int, Any]

_private_span_fields = operator.attrgetter(
    "_context", "_parent", "_name", "_kind", "_start_time", "_end_time", "_attributes", "_status"
)


def _read_private(span: sdk_trace.ReadableSpan) -> SpanFields:
    context, parent, name, kind, start, end, attributes, status = _private_span_fields(span)
    if type(attributes) is BoundedAttributes:
        return context, parent, name, kind, start, end, attributes._dict, attributes.dropped, status
    return context, parent, name, kind, start, end, attributes or {}, 0, status


def _read_public(span: sdk_trace.ReadableSpan) -> SpanFields:
    return (
        span.context,
        span.parent,
        span.name,
        span.kind,
        span.start_time,
        span.end_time,
        span.attributes or {},
        span.dropped_attributes,
        span.status,
    )


def span_fields_reader() -> Callable[[sdk_trace.ReadableSpan], SpanFields]:
    """A function reading :data:`SpanFields` of a finished span, the fastest that reads right.

    One ``operator.attrgetter`` call on the span's private fields, and the attribute dict
    inside ``BoundedAttributes``, where a probe span reads the same that way as through the
    public properties; the public properties (one Python call each) otherwise.
    """
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

    probe = sdk_trace.ReadableSpan(
        "probe",
        SpanContext(0x1F, 0x2F, is_remote=False),
        SpanContext(0x1F, 0x3F, is_remote=True),
        attributes=BoundedAttributes(8, {"a": "b", "c": 1, "d": 2.0, "e": True, "f": ("g",)}),
        kind=SpanKind.CLIENT,
        resource=Resource({}),  # not None: the SDK would run its resource detectors
        status=Status(StatusCode.ERROR, "why"),
        start_time=5,
        end_time=7,
    )
    try:
        fast = _read_private(probe)
    except Exception:
        return _read_public
    slow = _read_public(probe)
    if fast[:6] != slow[:6] or dict(fast[6]) != dict(slow[6]) or fast[7:] != slow[7:]:
        return _read_public
    return _read_private


def _keeps_given_entries() -> bool:
    """Whether a ``TraceState`` given its entries in ``_dict`` reads them back as given."""
    try:
        probe = TraceState()
        probe._dict = {"a@b@": "1", "0z": "2"}
        return list(probe.items()) == [("a@b@", "1"), ("0z", "2")] and probe.to_header() == "a@b@=1,0z=2"
    except Exception:
        return False


_GIVEN_ENTRIES = _keeps_given_entries()


def trace_state(entries: Sequence[tuple[str, str]]) -> TraceState:
    """A ``TraceState`` of ``entries``, already valid by W3C Trace Context Level 2, kept as given.

    The API's constructor checks keys against Level 1's grammar and drops, with a warning,
    keys Level 2 allows (``@`` anywhere after the first character, a leading digit). The
    fallback is that constructor: those keys are then not passed on.
    """
    if not _GIVEN_ENTRIES:
        return TraceState(entries)
    state = TraceState()
    state._dict = dict(entries)
    return state


def instrumented_by_contrib(app: object) -> bool:
    """Whether an OpenTelemetry contrib instrumentor's ``instrument_app`` traces ``app``.

    The contrib instrumentors (Flask, FastAPI, Starlette) mark the applications they
    instrument with a private attribute; ``tests/peers`` pins it against them. Without the
    mark the answer is ``False``: tracekit then traces the application too.
    """
    return getattr(app, "_is_instrumented_by_opentelemetry", False) is True
