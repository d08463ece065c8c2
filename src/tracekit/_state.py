"""The one home of tracekit's process-wide mutable state.

Everything that changes when tracing is configured or shut down lives here, so there is
exactly one place to read it and one ``reset()`` that puts the process back as it was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry import trace

if TYPE_CHECKING:
    from tracekit._configure import Tracing

__all__ = ["current", "tracer"]

#: The handle returned by the first successful ``configure()``; ``None`` before and after shutdown.
current: Tracing | None = None

#: tracekit's own tracer. Until ``configure()`` runs it is the API's no-op tracer, so manual
#: spans made at import time cost next to nothing and never fail.
tracer: trace.Tracer = trace.NoOpTracer()
