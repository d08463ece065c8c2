"""Propagation: inject into and extract from an HTTP-header carrier, one format at a time.

tracekit's propagator is whatever ``configure(propagators=[name])`` installs as the API's
global one; the peer's is built the way ``opentelemetry.propagate`` builds it from
``OTEL_PROPAGATORS=name`` (the ``opentelemetry_propagator`` entry point in a composite).
Bare runs the same calls through an empty composite (``OTEL_PROPAGATORS=none``), so the
overhead is the format's own work.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry import baggage, context, trace
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from benchmarks._common import global_propagator, opentelemetry_propagator, tracekit_configured
from benchmarks._harness import Batch, Benchmark, Scale, Session, Setup, Variant, loop

__all__ = ["benchmarks"]

FORMATS = ("tracecontext", "b3multi", "baggage")


def _with_global(propagator: TextMapPropagator) -> Session:
    @contextmanager
    def session() -> Iterator[Batch]:
        # Imported here, not at module level: the module reads OTEL_PROPAGATORS on import.
        from opentelemetry.propagate import extract, inject

        def round_trip() -> None:
            carrier: dict[str, str] = {}
            inject(carrier)
            extract(carrier)

        with global_propagator(propagator):
            yield loop(round_trip)

    return session


def _active_context() -> context.Context:
    """A sampled span and three baggage entries: what a request handler has in context."""
    span = NonRecordingSpan(
        SpanContext(
            trace_id=0x0AF7651916CD43DD8448EB211C80319C,
            span_id=0xB7AD6B7169203331,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
    )
    ctx = trace.set_span_in_context(span)
    for key, value in (("tenant", "acme"), ("region", "eu-west-1"), ("cart.id", "c-1042")):
        ctx = baggage.set_baggage(key, value, ctx)
    return ctx


def _setup(name: str) -> Setup:
    @contextmanager
    def setup() -> Iterator[Sequence[Variant]]:
        with tracekit_configured(propagators=[name]):
            from opentelemetry.propagate import get_global_textmap

            tracekit_propagator = get_global_textmap()
            token = context.attach(_active_context())
            try:
                yield [
                    Variant("bare (no propagator)", "bare", _with_global(CompositePropagator([]))),
                    Variant("tracekit-configured", "tracekit", _with_global(tracekit_propagator)),
                    Variant(
                        "OpenTelemetry-configured", "peer", _with_global(opentelemetry_propagator([name]))
                    ),
                ]
            finally:
                context.detach(token)

    return setup


def benchmarks(scale: Scale) -> list[Benchmark]:
    return [
        Benchmark(
            name=f"propagation-{name}",
            family="propagation",
            title=f"inject + extract, {name}",
            description=f"`propagate.inject()` into a fresh dict, then `propagate.extract()` from it, "
            f"with {name} as the only format, inside a sampled span with three baggage entries.",
            switching="in process: the API's global propagator is swapped between variants",
            setup=_setup(name),
            rounds=scale.rounds(21),
            iterations=scale.iterations(8_000),
            warmup=200,
        )
        for name in FORMATS
    ]
