"""One process that exits: ``python -m benchmarks._exit_child VARIANT URL``.

Makes 5 sampled spans, prints the wall-clock time (``time.time()``) as its last line of work
and ends, leaving the flush of its queued spans to what runs at exit. VARIANT is
``tracekit`` (``tracekit.configure()``), ``opentelemetry`` (the SDK set up as its
documentation shows, which flushes at exit through the provider's own ``atexit`` hook) or
``bare`` (no tracing). ``URL`` is the OTLP/HTTP base URL.
"""

from __future__ import annotations

import sys
import time

__all__ = ["main"]


def main(argv: list[str]) -> None:
    variant, url = argv[0], argv[1]
    if variant == "tracekit":
        import tracekit

        tracekit.configure(endpoint=url, instrument=False, service_name="benchmarks")
        for number in range(5):
            with tracekit.span(f"job-{number}"):
                pass
    elif variant == "opentelemetry":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": "benchmarks"}))
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=url.rstrip("/") + "/v1/traces"))
        )
        tracer = provider.get_tracer("benchmarks")
        for number in range(5):
            with tracer.start_as_current_span(f"job-{number}"):
                pass
    print(time.time(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
