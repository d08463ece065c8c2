"""Helpers for testing code that uses tracekit: record spans in memory and inspect them.

>>> from tracekit.testing import capture_spans
>>> with capture_spans(service_name="test") as recorder:
...     run_checkout()
>>> [span.name for span in recorder.spans]
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tracekit._configure import Tracing, configure
from tracekit._receiver import Fault, OTLPReceiver

__all__ = ["Fault", "OTLPReceiver", "SpanRecorder", "capture_spans"]


class SpanRecorder:
    """The spans ended while :func:`capture_spans` is active, in the order they ended."""

    def __init__(self, tracing: Tracing, exporter: InMemorySpanExporter) -> None:
        self.tracing = tracing
        self._exporter = exporter

    @property
    def spans(self) -> list[ReadableSpan]:
        """Every span ended so far (flushes the export queue first)."""
        self.tracing.force_flush(timeout=10)
        return list(self._exporter.get_finished_spans())

    def named(self, name: str) -> ReadableSpan:
        """The one span called ``name``; fails if there are none or several."""
        found = [span for span in self.spans if span.name == name]
        if len(found) != 1:
            names = [span.name for span in self.spans]
            raise AssertionError(f"expected exactly one span named {name!r}, found {len(found)} in {names}")
        return found[0]

    def clear(self) -> None:
        """Forget the spans recorded so far."""
        self.tracing.force_flush(timeout=10)
        self._exporter.clear()


@contextmanager
def capture_spans(**overrides: Any) -> Iterator[SpanRecorder]:
    """Configure tracekit to record spans in memory; shut it down on exit.

    Keyword arguments are passed to :func:`tracekit.configure` (``exporters`` is set).
    """
    exporter = InMemorySpanExporter()
    tracing = configure(**{"exporters": [exporter], **overrides})
    try:
        yield SpanRecorder(tracing, exporter)
    finally:
        tracing.shutdown(timeout=10)
