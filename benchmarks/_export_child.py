"""One export run, in a process of its own: ``python -m benchmarks._export_child VARIANT PROTOCOL URL N``.

Makes ``N`` sampled spans (three attributes each) as fast as it can and flushes them to the
OTLP receiver at ``URL``, then prints one JSON line: the seconds from the first span to
the end of the flush, the seconds spent making spans, and the process's peak resident
memory. VARIANT is ``tracekit`` (``tracekit.configure()``),
``opentelemetry`` (the SDK set up by hand, as its documentation shows) or ``bare`` (the
same imports and loop with a no-op tracer: the memory baseline). Both sides get a queue
that holds all ``N`` spans, so none is dropped and every span is exported.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable

from opentelemetry import trace

__all__ = ["main"]

ATTRIBUTES: dict[str, str | int] = {"order.id": "o-1042", "cart.items": 3, "payment.provider": "acme-pay"}


def _tracekit(protocol: str, url: str, spans: int) -> tuple[trace.Tracer, Callable[[], object]]:
    import tracekit
    from tracekit import _state

    tracing = tracekit.configure(
        exporters=["otlp"],
        protocol=protocol,
        endpoint=url,
        sampler="parentbased_always_on",
        instrument=False,
        service_name="benchmarks",
        bsp_max_queue_size=spans,
    )
    return _state.tracer, lambda: tracing.force_flush(timeout=120)


def _opentelemetry(protocol: str, url: str, spans: int) -> tuple[trace.Tracer, Callable[[], object]]:
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
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=spans))
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


VARIANTS = {"tracekit": _tracekit, "opentelemetry": _opentelemetry, "bare": _bare}


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


def main(argv: list[str]) -> None:
    variant, protocol, url, count = argv[0], argv[1], argv[2], int(argv[3])
    tracer, flush = VARIANTS[variant](protocol, url, count)
    start = time.perf_counter()
    for _ in range(count):
        with tracer.start_as_current_span("checkout", attributes=ATTRIBUTES):
            pass
    made = time.perf_counter() - start
    flush()
    total = time.perf_counter() - start
    print(json.dumps({"seconds": total, "making_seconds": made, "peak_kib": peak_memory_kib()}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
