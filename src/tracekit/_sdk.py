"""Builds the OpenTelemetry SDK objects from :class:`~tracekit._settings.Settings`.

The only module that assembles ``opentelemetry.sdk``: resource, sampler, span limits,
processors and exporters. Every value is passed explicitly, so the SDK never reads an
environment variable tracekit has already parsed (and reported on) itself.
"""

from __future__ import annotations

import os
import socket
import sys
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.version import __version__ as sdk_version

from tracekit import _compat, _fork
from tracekit._keep import KeepProcessor, KeepSampler
from tracekit._processor import BatchSpanProcessor
from tracekit._sampling import make_sampler
from tracekit._settings import Settings, declarations
from tracekit._version import __version__
from tracekit.exporters._otlp import OTLPSpanExporter, import_grpc_transport, traces_endpoint
from tracekit.exporters.console import ConsoleSpanExporter

__all__ = ["build_provider", "import_export_modules", "make_exporters", "make_resource"]


@contextmanager
def _parsed_variables_hidden(names: Iterable[str] | None = None) -> Iterator[None]:
    """Hide every variable tracekit declares while an SDK object is being built.

    SDK constructors fall back to reading ``OTEL_*`` variables themselves for arguments left
    unset or empty: ``TracerProvider`` reads ``OTEL_SDK_DISABLED`` (so ``disabled=False``
    would not win over the environment), the OTLP exporters read headers, certificates and
    timeouts (so a value tracekit rejected would be used anyway, and the gRPC exporter
    raises on a bad timeout). tracekit has parsed those variables and passes explicit values.
    ``names`` limits the hiding to those variables.
    """
    names = {var for decl in declarations() for var in decl.env} if names is None else set(names)
    saved = {name: os.environ.pop(name) for name in sorted(names) if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def make_resource(settings: Settings) -> Resource:
    """The resource every span carries: who emitted it, from which process, with which SDK."""
    attributes: dict[str, Any] = {
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": sdk_version,
        "telemetry.distro.name": "tracekit",
        "telemetry.distro.version": __version__,
        "service.instance.id": str(uuid.uuid4()),
        "process.pid": os.getpid(),
        "host.name": socket.gethostname(),
    }
    attributes.update(settings.resource_attributes)
    if settings.service_name:
        attributes["service.name"] = settings.service_name
    elif not attributes.get("service.name"):
        executable = os.path.basename(sys.executable) or "python"
        attributes["service.name"] = f"unknown_service:{executable}"
    if settings.service_version:
        attributes["service.version"] = settings.service_version
    if settings.environment:
        attributes["deployment.environment.name"] = settings.environment
    return Resource(attributes)


def make_span_limits(settings: Settings) -> SpanLimits:
    """Span limits with the span-specific values winning over the general ones."""

    def pick(specific: int | None, general: int | None) -> int | None:
        value = general if specific is None else specific
        return SpanLimits.UNSET if value is None else value

    return SpanLimits(
        max_attributes=pick(settings.span_attribute_count_limit, settings.attribute_count_limit),
        max_events=settings.span_event_count_limit,
        max_links=settings.span_link_count_limit,
        max_span_attributes=pick(settings.span_attribute_count_limit, settings.attribute_count_limit),
        max_event_attributes=pick(settings.event_attribute_count_limit, settings.attribute_count_limit),
        max_link_attributes=pick(settings.link_attribute_count_limit, settings.attribute_count_limit),
        max_attribute_length=pick(None, settings.attribute_value_length_limit),
        max_span_attribute_length=pick(
            settings.span_attribute_value_length_limit, settings.attribute_value_length_limit
        ),
    )


def make_exporters(settings: Settings, sources: Mapping[str, str]) -> list[SpanExporter]:
    """The exporters named (or given) in ``settings.exporters``, in order."""
    exporters: list[SpanExporter] = []
    for item in settings.exporters:
        if isinstance(item, SpanExporter):
            exporters.append(item)
        elif item == "otlp":
            exporters.append(_deferred_otlp_exporter(settings, sources))
        elif item == "console":
            exporters.append(ConsoleSpanExporter())
    return exporters


def _deferred_otlp_exporter(settings: Settings, sources: Mapping[str, str]) -> OTLPSpanExporter:
    if settings.protocol == "grpc":
        # Imported now (no thread starts), connected with the first span (OTLPSpanExporter.prepare):
        # importing grpc at exit could fail, as Python then refuses to start threads.
        import_grpc_transport()
    return OTLPSpanExporter(settings, traces_endpoint(settings, dict(sources)))


def build_provider(settings: Settings, sources: Mapping[str, str]) -> _compat.TracerProvider:
    """A tracer provider with one batch processor per configured exporter.

    With ``keep_errors`` or ``keep_slow_ms`` set, unsampled spans are recorded too and a
    :class:`~tracekit._keep.KeepProcessor` in front of the batch processors hands them the
    failing and the slow traces.

        Fork-safe: a forked child runs nothing of it but lock-free resets (see ``tracekit._fork``).
    """
    keeping = settings.keep_errors or settings.keep_slow_ms is not None
    sampler = make_sampler(settings.sampler, settings.sample_ratio)
    with _parsed_variables_hidden():
        provider = _compat.TracerProvider(
            sampler=KeepSampler(sampler) if keeping else sampler,
            resource=make_resource(settings),
            shutdown_on_exit=False,
            span_limits=make_span_limits(settings),
        )
    processors = [
        BatchSpanProcessor(
            exporter,
            max_queue_size=settings.bsp_max_queue_size,
            max_export_batch_size=settings.bsp_max_export_batch_size,
            schedule_delay=settings.bsp_schedule_delay,
            export_timeout=settings.bsp_export_timeout,
        )
        for exporter in make_exporters(settings, sources)
    ]
    if keeping:
        provider.add_span_processor(
            KeepProcessor(
                processors,
                keep_errors=settings.keep_errors,
                slow_ms=settings.keep_slow_ms,
                max_spans=settings.keep_buffer_spans,
            )
        )
    for processor in processors:
        provider.add_span_processor(processor)
    _follow_forks(provider.resource, settings.resource_attributes)
    return provider


def _follow_forks(resource: Resource, given: Mapping[str, Any]) -> None:
    """In a forked child, ``process.pid`` becomes the child's and ``service.instance.id`` new.

    Only where tracekit chose the value: values given in ``OTEL_RESOURCE_ATTRIBUTES`` are
    kept. Done as the child queues its first span, not at the fork: the resource object is
    shared by the provider, its tracers and every span they made, and changed in place, so
    the spans a child exports all carry its own values.
    """

    def refresh(current: Resource) -> None:
        attributes = dict(current.attributes)
        attributes["process.pid"] = given.get("process.pid", os.getpid())
        attributes["service.instance.id"] = given.get("service.instance.id", str(uuid.uuid4()))
        _compat.replace_resource_attributes(current, attributes)

    _fork.before_first_span(resource, refresh)


def import_export_modules(exporters: Iterable[SpanExporter]) -> None:
    """Import now, on this thread, what exporting to ``exporters`` will import later.

    Under a server whose forks no Python hook can wait for (uWSGI), so that no child is
    forked while the export thread holds a module's import lock.
    """
    for exporter in exporters:
        if isinstance(exporter, OTLPSpanExporter):
            exporter.import_modules()
