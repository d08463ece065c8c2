"""Propagator names (OTEL_PROPAGATORS) to propagator instances.

W3C Trace Context, W3C Baggage and B3 are tracekit's own (:mod:`tracekit._tracecontext`,
:mod:`tracekit._baggage`, :mod:`tracekit._b3`: the official ones fall short of their
specifications in places); Jaeger is the official ``opentelemetry-propagator-jaeger``, its
extraction guarded by the header check it lacks (see :class:`_Checked`).
tests/test_propagation.py shows what each difference is for.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.baggage import _BAGGAGE_KEY
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)

__all__ = ["extracted_fields", "first_value", "install_global", "make_propagator", "span_injector"]

#: The composite :func:`make_propagator` built last, when it holds nothing but tracekit's
#: W3C Trace Context and W3C Baggage: ``(composite, trace context, baggage)``.
_direct: tuple[TextMapPropagator | None, Any, TextMapPropagator | None] = (None, None, None)


def extracted_fields(fields: Iterable[str]) -> frozenset[str]:
    """The header names read by the propagators that write ``fields`` (lowercase).

    A propagator's ``fields`` are what it writes; tracekit's B3 propagators read both B3
    encodings, so a request carrying either one is extracted, whichever is configured.
    """
    from tracekit._b3 import READ_FIELDS

    names = frozenset(field.lower() for field in fields)
    return names | READ_FIELDS if not names.isdisjoint(READ_FIELDS) else names


class _Checked(TextMapPropagator):
    """An official propagator, with the header checks it lacks.

    ``extract`` first asks ``well_formed`` whether the carrier's headers are parseable by
    the format's grammar, and ignores them when they are not; and when the official
    propagator would store an invalid span context it keeps the context it was given, as
    the OpenTelemetry propagators API requires (a later, unparseable format must not
    discard a context an earlier format extracted). ``rewrite`` adjusts injected values.
    """

    def __init__(
        self,
        inner: TextMapPropagator,
        well_formed: Callable[[Getter[Any], Any], bool],
        rewrite: Callable[[str, str], str] | None = None,
    ) -> None:
        self.inner = inner
        self._well_formed = well_formed
        self._rewrite = rewrite

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        if context is None:
            context = Context()
        if not self._well_formed(getter, carrier):
            return context
        extracted = self.inner.extract(carrier, context, getter)
        span = trace.get_current_span(extracted)
        if span is not trace.get_current_span(context) and not span.get_span_context().is_valid:
            return context
        return extracted

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        if self._rewrite is not None:
            setter = _RewritingSetter(setter, self._rewrite)
        self.inner.inject(carrier, context, setter)

    @property
    def fields(self) -> set[str]:
        return self.inner.fields


class _RewritingSetter(Setter[CarrierT]):
    def __init__(self, setter: Setter[CarrierT], rewrite: Callable[[str, str], str]) -> None:
        self._setter = setter
        self._rewrite = rewrite

    def set(self, carrier: CarrierT, key: str, value: str) -> None:
        self._setter.set(carrier, key, self._rewrite(key, value))


def first_value(values: Iterable[str] | None) -> str | None:
    """The first of a header's values as a getter returns them, or ``None``."""
    return next(iter(values), None) if values is not None else None


# {trace-id}:{span-id}:{parent-span-id}:{flags}, each in base16 (shorter ids are 0-padded)
_UBER_TRACE_ID = re.compile(r"[0-9a-fA-F]{1,32}:[0-9a-fA-F]{1,16}:[0-9a-fA-F]{1,16}:[0-9a-fA-F]{1,2}")


def _jaeger_well_formed(getter: Getter[Any], carrier: Any) -> bool:
    # The official propagator reads each field with int(field, 16), which also takes
    # "0x1f", "1_f", "-1f", " 1f " and non-ASCII digits.
    header = first_value(getter.get(carrier, "uber-trace-id"))
    return not header or _UBER_TRACE_ID.fullmatch(header.strip()) is not None


def _jaeger_flags(key: str, value: str) -> str:
    # The official propagator sets the Jaeger debug flag (0x02) on every sampled span, and
    # copies other W3C trace flags into the Jaeger bitmap: send only the sampled bit.
    head, sep, flags = value.rpartition(":")
    if key != "uber-trace-id" or not sep:
        return value
    return f"{head}:{int(flags, 16) & 0x01:02x}"


def _tracecontext() -> TextMapPropagator:
    from tracekit._tracecontext import TraceContextPropagator

    return TraceContextPropagator()


def _baggage() -> TextMapPropagator:
    from tracekit._baggage import W3CBaggagePropagator

    return W3CBaggagePropagator()


def _b3() -> TextMapPropagator:
    from tracekit._b3 import B3SingleFormat

    return B3SingleFormat()


def _b3multi() -> TextMapPropagator:
    from tracekit._b3 import B3MultiFormat

    return B3MultiFormat()


def _jaeger() -> TextMapPropagator:
    from opentelemetry.propagators.jaeger import JaegerPropagator

    return _Checked(JaegerPropagator(), _jaeger_well_formed, _jaeger_flags)


_FACTORIES: dict[str, Callable[[], TextMapPropagator]] = {
    "tracecontext": _tracecontext,
    "baggage": _baggage,
    "b3": _b3,
    "b3multi": _b3multi,
    "jaeger": _jaeger,
}


def make_propagator(names: Sequence[str]) -> CompositePropagator:
    """One composite propagator running ``names`` in order; ``none`` contributes nothing.

    Extraction runs in order, so when two formats carry a context, the later one wins, as
    the specification's composite propagator does.
    """
    global _direct
    used = [name for name in names if name != "none"]
    propagators = [_FACTORIES[name]() for name in used]
    composite = CompositePropagator(propagators)
    by_name = dict(zip(used, propagators, strict=True))
    if set(used) <= {"tracecontext", "baggage"} and len(by_name) == len(used):
        _direct = (composite, by_name.get("tracecontext"), by_name.get("baggage"))
    else:
        _direct = (None, None, None)
    return composite


def span_injector() -> Callable[[dict[str, str], trace.Span, Context], None]:
    """``inject(carrier, span, parent)``: the global propagator's fields for ``span``.

    The same as ``propagate.inject(carrier, set_span_in_context(span, parent))``. While the
    global propagator is the one :func:`make_propagator` built from ``tracecontext`` and
    ``baggage`` alone (the default), ``traceparent`` is formatted straight from the span,
    without making a context for it or looking the span up again.
    """
    # Imported here, once configure() has loaded it safely (see install_global).
    from opentelemetry import propagate

    get_global_textmap = propagate.get_global_textmap
    set_span_in_context = trace.set_span_in_context

    def inject(carrier: dict[str, str], span: trace.Span, parent: Context) -> None:
        textmap = get_global_textmap()
        composite, tracecontext, baggage = _direct
        if textmap is not composite:
            textmap.inject(carrier, set_span_in_context(span, parent))
            return
        if tracecontext is not None:
            tracecontext.inject_span_context(carrier, span.get_span_context())
        if baggage is not None and parent.get(_BAGGAGE_KEY):  # no baggage, no header
            baggage.inject(carrier, parent)

    return inject


def install_global(propagator: TextMapPropagator) -> TextMapPropagator:
    """Make ``propagator`` the API's global one; return the one it replaces.

    ``opentelemetry.propagate`` reads ``OTEL_PROPAGATORS`` when first imported and raises
    on a name it cannot load, which would stop the application over a typo. tracekit has
    already parsed (and reported on) that variable, so the module is imported with the
    variable hidden, then given the propagator tracekit built. Hidden means unset, not
    ``none``: unset, the API builds its two default propagators directly, where any value
    makes it import ``importlib.metadata`` to look up entry points (~20 ms at start-up).
    """
    if "opentelemetry.propagate" not in sys.modules:
        saved = os.environ.pop("OTEL_PROPAGATORS", None)
        try:
            import opentelemetry.propagate  # noqa: F401
        finally:
            if saved is not None:
                os.environ["OTEL_PROPAGATORS"] = saved
    from opentelemetry import propagate

    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(propagator)
    return previous
