"""Manual spans: ``@tracekit.traced`` and ``tracekit.span()`` against OpenTelemetry's own.

The peer is OpenTelemetry's ``@tracer.start_as_current_span("name")`` used as a decorator
(and as a ``with`` block), with a tracer from a separate SDK provider whose batch processor
drops the spans. tracekit's function is decorated before ``configure()`` runs, as a
module-level function is in an application. When switched off, each traced variant checks
that it exported exactly one span per call (sampled) or none at all (unsampled).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

import tracekit
from benchmarks._common import Pipeline, counted, peer_provider, tracekit_configured, tracekit_disabled
from benchmarks._harness import Batch, Benchmark, Scale, Session, Unavailable, Variant, loop

__all__ = ["decorator_benchmarks", "span_benchmarks"]

_SWITCHING = (
    "in process; tracekit is configured once for the benchmark (its provider is the API's global "
    "one), the peer uses a separate SDK provider passed explicitly, bare calls the plain function"
)

Context = Callable[[], AbstractContextManager[Any]]


def checkout(order_id: int) -> int:
    """The decorated workload: a trivial function, so the figures are the tracing cost itself."""
    return order_id + 1


def _tracekit_traced(function: Callable[[int], int]) -> Callable[[int], int] | Exception:
    """``tracekit.traced(function)``, or the exception that says why it cannot be had."""
    try:
        from tracekit import traced  # type: ignore[attr-defined, unused-ignore]

        decorated: Callable[[int], int] = traced(function)
    except (ImportError, AttributeError, TypeError) as exc:
        return exc
    return decorated


def _calls(
    function: Callable[[int], int] | Exception,
    context: Context = nullcontext,
    pipeline: Pipeline | None = None,
    spans: int = 1,
) -> Session:
    """A session that calls ``function(1)`` inside ``context()``; with a pipeline, it checks
    that each call exported ``spans`` spans."""

    @contextmanager
    def session() -> Iterator[Batch]:
        if isinstance(function, Exception):
            raise Unavailable(f"tracekit.traced: {type(function).__name__}: {function}")
        batch = loop(functools.partial(function, 1))
        with context():
            if pipeline is None:
                yield batch
            else:
                with counted(batch, pipeline, spans) as checked:
                    yield checked

    return session


def _unsampled_parent(remote: bool = False) -> AbstractContextManager[Any]:
    """An active, unsampled parent span: what a request dropped by sampling looks like.

    ``remote``: the context an upstream service sent, extracted and made current as it is
    (a message consumer, a task): the upstream service decided not to sample.
    """
    parent = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=remote,
        trace_flags=TraceFlags(TraceFlags.DEFAULT),
    )
    return trace.use_span(NonRecordingSpan(parent), end_on_exit=False)


def _unsampled_remote_parent() -> AbstractContextManager[Any]:
    return _unsampled_parent(remote=True)


def _peer_decorated(tracer: trace.Tracer) -> Callable[[int], int]:
    decorated: Callable[[int], int] = tracer.start_as_current_span("checkout")(checkout)
    return decorated


@contextmanager
def _sampled() -> Iterator[Sequence[Variant]]:
    traced = _tracekit_traced(checkout)
    with ExitStack() as stack:
        tracekit_pipeline = stack.enter_context(tracekit_configured())
        batch_provider, batch_pipeline = stack.enter_context(peer_provider("batch"))
        simple_provider, simple_pipeline = stack.enter_context(peer_provider("simple"))
        yield [
            Variant("bare", "bare", _calls(checkout)),
            Variant("tracekit @traced", "tracekit", _calls(traced, pipeline=tracekit_pipeline)),
            Variant(
                "OpenTelemetry @start_as_current_span",
                "peer",
                _calls(_peer_decorated(batch_provider.get_tracer("benchmarks")), pipeline=batch_pipeline),
            ),
            Variant(
                "OpenTelemetry, SimpleSpanProcessor",
                "reference",
                _calls(_peer_decorated(simple_provider.get_tracer("benchmarks")), pipeline=simple_pipeline),
            ),
        ]


def _three(
    traced: Callable[[int], int] | Exception,
    tracer: trace.Tracer,
    context: Context,
    pipelines: tuple[Pipeline, Pipeline] | None = None,
) -> list[Variant]:
    tracekit_pipeline, peer_pipeline = pipelines or (None, None)
    return [
        Variant("bare", "bare", _calls(checkout, context)),
        Variant("tracekit @traced", "tracekit", _calls(traced, context, tracekit_pipeline, spans=0)),
        Variant(
            "OpenTelemetry @start_as_current_span",
            "peer",
            _calls(_peer_decorated(tracer), context, peer_pipeline, spans=0),
        ),
    ]


@contextmanager
def _unsampled() -> Iterator[Sequence[Variant]]:
    traced = _tracekit_traced(checkout)
    with tracekit_configured() as tracekit_pipeline, peer_provider("batch") as (provider, peer_pipeline):
        tracer = provider.get_tracer("benchmarks")
        yield _three(traced, tracer, _unsampled_parent, (tracekit_pipeline, peer_pipeline))


@contextmanager
def _unsampled_remote() -> Iterator[Sequence[Variant]]:
    traced = _tracekit_traced(checkout)
    with tracekit_configured() as tracekit_pipeline, peer_provider("batch") as (provider, peer_pipeline):
        tracer = provider.get_tracer("benchmarks")
        yield _three(traced, tracer, _unsampled_remote_parent, (tracekit_pipeline, peer_pipeline))


@contextmanager
def _disabled() -> Iterator[Sequence[Variant]]:
    traced = _tracekit_traced(checkout)
    with tracekit_disabled(), peer_provider("batch", disabled=True) as (provider, _):
        yield _three(traced, provider.get_tracer("benchmarks"), nullcontext)


@contextmanager
def _unconfigured() -> Iterator[Sequence[Variant]]:
    tracekit.shutdown(timeout=5)
    yield _three(_tracekit_traced(checkout), trace.NoOpTracer(), nullcontext)


def decorator_benchmarks(scale: Scale) -> list[Benchmark]:
    fast = scale.iterations(40_000)
    rounds = scale.rounds(21)
    return [
        Benchmark(
            name="decorator-sampled",
            family="decorator",
            title="Decorated function, sampled",
            description="A call to a decorated trivial function; every span sampled and dropped by the "
            "exporter. The reference row is the peer with the SDK's SimpleSpanProcessor.",
            switching=_SWITCHING,
            setup=_sampled,
            rounds=rounds,
            iterations=scale.iterations(4_000),
            warmup=200,
        ),
        Benchmark(
            name="decorator-unsampled",
            family="decorator",
            title="Decorated function inside an unsampled trace",
            description="The same call under an active local parent span that was not sampled "
            "(parent-based sampling on both sides).",
            switching=_SWITCHING,
            setup=_unsampled,
            rounds=rounds,
            iterations=fast,
            warmup=500,
        ),
        Benchmark(
            name="decorator-unsampled-remote",
            family="decorator",
            title="Decorated function under an unsampled remote parent",
            description="The same call with the context an upstream service sent, unsampled, current "
            "(a consumer or a task that continues the caller's trace; parent-based sampling on both sides).",
            switching=_SWITCHING,
            setup=_unsampled_remote,
            rounds=rounds,
            iterations=fast,
            warmup=500,
        ),
        Benchmark(
            name="decorator-disabled",
            family="decorator",
            title="Decorated function, tracing disabled",
            description="tracekit configured with `disabled=True` (what `OTEL_SDK_DISABLED=true` does); "
            "the peer's SDK provider built under `OTEL_SDK_DISABLED=true` (it hands out no-op tracers).",
            switching="in process; tracekit is configured disabled for the benchmark",
            setup=_disabled,
            rounds=rounds,
            iterations=fast,
            warmup=500,
        ),
        Benchmark(
            name="decorator-unconfigured",
            family="decorator",
            title="Decorated function, configure() never called",
            description="tracekit not configured; the peer decorates with the API's no-op tracer "
            "(no SDK installed).",
            switching="in process; tracekit is shut down for the benchmark",
            setup=_unconfigured,
            rounds=rounds,
            iterations=fast,
            warmup=500,
        ),
    ]


# ----------------------------------------------------------------------------- span blocks


def _work() -> int:
    return 1


def _block(make: Callable[[], Callable[[], object]], pipeline: Pipeline | None) -> Session:
    @contextmanager
    def session() -> Iterator[Batch]:
        batch = loop(make())
        if pipeline is None:
            yield batch
        else:
            with counted(batch, pipeline) as checked:
                yield checked

    return session


def _tracekit_block() -> Callable[[], object]:
    try:
        from tracekit import span  # type: ignore[attr-defined, unused-ignore]
    except ImportError as exc:
        raise Unavailable(f"tracekit.span: {exc}") from exc

    def operation() -> object:
        with span("reserve_inventory"):
            return _work()

    return operation


@contextmanager
def _span_block() -> Iterator[Sequence[Variant]]:
    with tracekit_configured() as tracekit_pipeline, peer_provider("batch") as (provider, peer_pipeline):
        tracer = provider.get_tracer("benchmarks")

        def peer() -> object:
            with tracer.start_as_current_span("reserve_inventory"):
                return _work()

        yield [
            Variant("bare", "bare", _block(lambda: _work, None)),
            Variant("tracekit span()", "tracekit", _block(_tracekit_block, tracekit_pipeline)),
            Variant("OpenTelemetry start_as_current_span", "peer", _block(lambda: peer, peer_pipeline)),
        ]


def span_benchmarks(scale: Scale) -> list[Benchmark]:
    return [
        Benchmark(
            name="span-block",
            family="span",
            title="span() block, sampled",
            description="`with span(name): work()` around a trivial body; every span sampled and dropped.",
            switching=_SWITCHING,
            setup=_span_block,
            rounds=scale.rounds(21),
            iterations=scale.iterations(4_000),
            warmup=200,
        )
    ]
