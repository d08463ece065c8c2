"""One export run, in a process of its own.

``python -m benchmarks._export_child VARIANT PROTOCOL URL N [THREADS burst]``

After a warm-up of :data:`WARM_UP` spans (made and flushed, so that imports and connections
are behind it), makes ``N`` sampled spans (three attributes each) as fast as it can and flushes them to the
OTLP receiver at ``URL``, then prints one JSON line: the seconds from the first span to
the end of the flush, the seconds spent making spans, the CPU time of the export thread
and the process's peak resident memory. VARIANT is ``tracekit`` (``tracekit.configure()``),
``opentelemetry`` (the SDK set up by hand, as its documentation shows), ``bare`` (the
same imports and loop with a no-op tracer: the memory baseline), or ``tracekit-none`` /
``opentelemetry-none`` (the same tracer with no exporter: what making a span costs alone).

By default both sides get a queue that holds all ``N`` spans, so none is dropped and every
span is exported. With ``THREADS burst``, ``THREADS`` threads share the ``N`` spans and
the queue and batch settings are the defaults: what arrives is what a burst gets through.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from collections.abc import Callable

from opentelemetry import trace

__all__ = ["main"]

#: Spans made and flushed before the measurement starts (the receiver gets them too).
WARM_UP = 1000

ATTRIBUTES: dict[str, str | int] = {"order.id": "o-1042", "cart.items": 3, "payment.provider": "acme-pay"}


EXPORT_THREADS = {"tracekit": "tracekit-export", "opentelemetry": "OtelBatchSpanRecordProcessor"}


def _tracekit(
    protocol: str, url: str, spans: int, exporters: tuple[str, ...] = ("otlp",)
) -> tuple[trace.Tracer, Callable[[], object]]:
    import tracekit
    from tracekit import _state

    queue = {"bsp_max_queue_size": spans} if spans else {}
    tracing = tracekit.configure(
        exporters=list(exporters),
        protocol=protocol,
        endpoint=url,
        sampler="parentbased_always_on",
        instrument=False,
        service_name="benchmarks",
        **queue,
    )
    return _state.tracer, lambda: tracing.force_flush(timeout=120)


def _tracekit_none(protocol: str, url: str, spans: int) -> tuple[trace.Tracer, Callable[[], object]]:
    return _tracekit(protocol, url, spans, exporters=())


def _opentelemetry_none(protocol: str, url: str, spans: int) -> tuple[trace.Tracer, Callable[[], object]]:
    return _opentelemetry(protocol, url, spans, export=False)


def _opentelemetry(
    protocol: str, url: str, spans: int, export: bool = True
) -> tuple[trace.Tracer, Callable[[], object]]:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    exporter: SpanExporter
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GRPCExporter

        exporter = GRPCExporter(endpoint=url, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTPExporter

        exporter = HTTPExporter(endpoint=url.rstrip("/") + "/v1/traces")
    provider = TracerProvider(
        resource=Resource.create({"service.name": "benchmarks"}), shutdown_on_exit=False
    )
    if export:
        queue = {"max_queue_size": spans} if spans else {}
        provider.add_span_processor(BatchSpanProcessor(exporter, **queue))
    return provider.get_tracer("benchmarks"), lambda: provider.force_flush(120_000)


def _bare(protocol: str, url: str, spans: int) -> tuple[trace.Tracer, Callable[[], object]]:
    # The same imports as the measured variants, and nothing else.
    import opentelemetry.sdk.trace

    import tracekit

    if protocol == "grpc":
        import opentelemetry.exporter.otlp.proto.grpc.trace_exporter
    else:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter
    del tracekit, opentelemetry
    return trace.NoOpTracer(), lambda: None


VARIANTS = {
    "tracekit": _tracekit,
    "opentelemetry": _opentelemetry,
    "bare": _bare,
    "tracekit-none": _tracekit_none,
    "opentelemetry-none": _opentelemetry_none,
}


def export_thread_cpu(variant: str) -> float | None:
    """CPU seconds the variant's export thread has used so far (``None``: no such thread)."""
    name = EXPORT_THREADS.get(variant)
    for thread in threading.enumerate():
        if thread.name == name and thread.ident is not None:
            try:
                return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
            except (AttributeError, OSError):
                return None
    return None


def peak_memory_kib() -> int:
    """This process's peak resident set size, in KiB.

    On Linux ``ru_maxrss`` keeps, across ``exec``, the peak of the process that forked the
    child (here the benchmark runner, far bigger than the child): ``VmHWM`` belongs to the
    child's own address space, so it is read first.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _make(tracer: trace.Tracer, count: int) -> None:
    for _ in range(count):
        with tracer.start_as_current_span("checkout", attributes=ATTRIBUTES):
            pass


def main(argv: list[str]) -> None:
    variant, protocol, url, count = argv[0], argv[1], argv[2], int(argv[3])
    burst = len(argv) > 5 and argv[5] == "burst"
    threads = int(argv[4]) if burst else 1
    tracer, flush = VARIANTS[variant](protocol, url, 0 if burst else count)
    # Warm up: the exporter's imports and connection happen before the measurement.
    _make(tracer, WARM_UP)
    flush()
    cpu_before = export_thread_cpu(variant)
    start = time.perf_counter()
    if threads == 1:
        _make(tracer, count)
    else:
        workers = [threading.Thread(target=_make, args=(tracer, count // threads)) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    made = time.perf_counter() - start
    flush()
    total = time.perf_counter() - start
    figures = {
        "seconds": total,
        "making_seconds": made,
        "export_cpu_seconds": None
        if cpu_before is None
        else (export_thread_cpu(variant) or 0.0) - cpu_before,
        "peak_kib": peak_memory_kib(),
    }
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
