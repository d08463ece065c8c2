"""What the workloads share: the exporter that drops spans, and tracekit and peer set-ups.

tracekit and the OpenTelemetry peer never share a tracer provider. tracekit is configured
with :func:`tracekit.configure` (which installs its provider as the API's global one); the
peer gets a separate SDK :class:`~opentelemetry.sdk.trace.TracerProvider`, handed to the
OpenTelemetry decorator and instrumentors explicitly, so that neither ever records into
the other's pipeline. The API's global propagator is tracekit's while tracekit is
configured; peer variants that inject or extract switch it to OpenTelemetry's own for their
rounds (:func:`global_propagator`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.util._importlib_metadata import entry_points

import tracekit
from benchmarks._harness import Batch, Session, Unavailable, Variant

__all__ = [
    "DropExporter",
    "Pipeline",
    "Switch",
    "counted",
    "global_propagator",
    "handle_session",
    "integration_variants",
    "opentelemetry_propagator",
    "peer_provider",
    "tracekit_configured",
    "tracekit_disabled",
    "tracekit_integration",
]

#: The sampler both sides use: every root span is sampled, children follow their parent.
SAMPLER = "parentbased_always_on"

#: Both sides' export queue bound. A round of thousands of cheap operations outruns the
#: export thread, which runs only when it gets the GIL, and a dropped span voids the round
#: (see :func:`counted`); with the default 2048 the sqlite3 rounds sometimes did.
QUEUE_SIZE = 65_536


class DropExporter(SpanExporter):
    """Accepts every batch and keeps nothing, so only the cost of making spans is measured."""

    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


@dataclass(frozen=True)
class Pipeline:
    """Where one side's spans end up: its exporter, and how to flush the processor in front of it."""

    exporter: DropExporter
    flush: Callable[[], object]


@contextmanager
def counted(batch: Batch, pipeline: Pipeline, spans_per_operation: int = 1) -> Iterator[Batch]:
    """``batch``, checked on exit to have exported ``spans_per_operation`` spans per operation.

    It proves that the instrumentation being measured was really active and that no span
    was dropped by a full queue, which would make a variant look cheaper than it is.
    """
    pipeline.flush()
    before = pipeline.exporter.exported
    operations = 0

    def run(n: int) -> None:
        nonlocal operations
        operations += n
        batch(n)

    yield run
    pipeline.flush()
    exported = pipeline.exporter.exported - before
    if exported != operations * spans_per_operation:
        raise RuntimeError(
            f"{exported} spans exported for {operations} operations "
            f"(expected {spans_per_operation} each): instrumentation inactive or spans dropped"
        )


@contextmanager
def tracekit_configured(**overrides: Any) -> Iterator[Pipeline]:
    """tracekit configured to drop its spans, sampling every root; shut down on exit.

    Integrations are never patched by ``configure()`` here: a benchmark switches the one
    it measures on and off itself.
    """
    tracekit.shutdown(timeout=5)
    exporter = DropExporter()
    settings: dict[str, Any] = {
        "exporters": [exporter],
        "sampler": SAMPLER,
        "bsp_max_queue_size": QUEUE_SIZE,
        "instrument": False,
        "service_name": "benchmarks",
    }
    settings.update(overrides)
    tracing = tracekit.configure(**settings)
    try:
        yield Pipeline(exporter, lambda: tracing.force_flush(timeout=10))
    finally:
        tracing.shutdown(timeout=5)


@contextmanager
def tracekit_disabled() -> Iterator[tracekit.Tracing]:
    """tracekit configured as under ``OTEL_SDK_DISABLED=true``."""
    tracekit.shutdown(timeout=5)
    tracing = tracekit.configure(disabled=True)
    try:
        yield tracing
    finally:
        tracing.shutdown(timeout=5)


@contextmanager
def peer_provider(
    processor: str = "batch", *, disabled: bool = False
) -> Iterator[tuple[TracerProvider, Pipeline]]:
    """An OpenTelemetry SDK provider set up the way its documentation shows, dropping spans.

    ``processor`` is ``batch`` (the SDK's BatchSpanProcessor, what a service uses) or
    ``simple``. ``disabled`` builds it under ``OTEL_SDK_DISABLED=true``, where the SDK hands
    out no-op tracers.
    """
    saved = os.environ.get("OTEL_SDK_DISABLED")
    if disabled:
        os.environ["OTEL_SDK_DISABLED"] = "true"
    try:
        provider = TracerProvider(sampler=ParentBased(ALWAYS_ON), shutdown_on_exit=False)
    finally:
        if saved is None:
            os.environ.pop("OTEL_SDK_DISABLED", None)
        else:
            os.environ["OTEL_SDK_DISABLED"] = saved
    exporter = DropExporter()
    provider.add_span_processor(
        BatchSpanProcessor(exporter, max_queue_size=QUEUE_SIZE)
        if processor == "batch"
        else SimpleSpanProcessor(exporter)
    )
    try:
        yield provider, Pipeline(exporter, lambda: provider.force_flush(10_000))
    finally:
        provider.shutdown()


def opentelemetry_propagator(names: Sequence[str] = ("tracecontext", "baggage")) -> TextMapPropagator:
    """The propagator ``opentelemetry.propagate`` installs for ``OTEL_PROPAGATORS=names``.

    The default is OpenTelemetry's default, which is what ``opentelemetry-instrument`` uses.
    """
    loaded = []
    for name in names:
        (entry_point,) = entry_points(group="opentelemetry_propagator", name=name)
        loaded.append(entry_point.load()())
    return CompositePropagator(loaded)


@contextmanager
def global_propagator(propagator: TextMapPropagator) -> Iterator[None]:
    """``propagator`` as the API's global one for the duration."""
    from opentelemetry import propagate  # after configure(): it reads OTEL_PROPAGATORS on import

    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(propagator)
    try:
        yield
    finally:
        propagate.set_global_textmap(previous)


#: Switches one side's instrumentation on for the duration of a round.
Switch = Callable[[], AbstractContextManager[object]]


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextmanager
def tracekit_integration(name: str) -> Iterator[None]:
    """tracekit's integration ``name`` patched for the duration; Unavailable if there is none."""
    try:
        tracekit.instrument(name)
    except tracekit.ConfigError as exc:
        raise Unavailable(f"tracekit.instrument({name!r}): {exc}") from exc
    try:
        yield
    finally:
        tracekit.uninstrument(name)


def _peer_switch(instrumentor: Callable[[], Any], provider: TracerProvider, injects: bool) -> Switch:
    @contextmanager
    def switch() -> Iterator[None]:
        instance = instrumentor()
        instance.instrument(tracer_provider=provider)
        try:
            with global_propagator(opentelemetry_propagator()) if injects else _nothing():
                yield
        finally:
            instance.uninstrument()

    return switch


def handle_session(
    open_handle: Callable[[], Any],
    make_batch: Callable[[Any], Batch],
    close: Callable[[Any], object],
    switch: Switch,
    pipeline: Pipeline | None,
) -> Session:
    """A round's session: ``switch`` on, a fresh handle (client, connection, producer), its batch.

    The batch is checked against ``pipeline`` (see :func:`counted`) unless that is ``None``.
    """

    @contextmanager
    def session() -> Iterator[Batch]:
        with switch():
            handle = open_handle()
            try:
                batch = make_batch(handle)
                if pipeline is None:
                    yield batch
                else:
                    with counted(batch, pipeline) as checked:
                        yield checked
            finally:
                close(handle)

    return session


def integration_variants(
    session: Callable[[Switch, Pipeline | None], Session],
    *,
    integration: str,
    peer: str,
    instrumentor: Callable[[], Any],
    injects: bool,
    tracekit_pipeline: Pipeline,
    peer_provider_and_pipeline: tuple[TracerProvider, Pipeline],
) -> list[Variant]:
    """bare, tracekit's integration ``integration`` and the peer's ``instrumentor``, one session each.

    ``session(switch, pipeline)`` makes a round's session with its side switched on by
    ``switch``, checked against ``pipeline`` (``None``: bare, nothing to check). The peer
    injects with OpenTelemetry's default propagator when ``injects`` (clients that send
    context), and uses the separate SDK provider given.
    """
    provider, peer_pipeline = peer_provider_and_pipeline
    return [
        Variant("bare", "bare", session(_nothing, None)),
        Variant(
            f"tracekit {integration} integration",
            "tracekit",
            session(lambda: tracekit_integration(integration), tracekit_pipeline),
        ),
        Variant(peer, "peer", session(_peer_switch(instrumentor, provider, injects), peer_pipeline)),
    ]
