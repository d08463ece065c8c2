"""Export counters: what became of the spans a process queued, readable at any time.

:class:`Counters` is written by the export thread alone (and by a span path that finds the
queue full), without a lock: an ``int`` field incremented by one thread never loses a count.
:func:`tracekit.stats` sums them into an :class:`ExportStats`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

__all__ = ["Counters", "ExportStats"]


class Counters:
    """The running counts of one exporter; see :class:`ExportStats` for each field."""

    __slots__ = (
        "bytes_sent",
        "dropped",
        "exported",
        "failed",
        "last_error",
        "last_error_time",
        "rejected",
        "requests",
        "retries",
        "truncated",
    )

    def __init__(self) -> None:
        self.exported = self.dropped = self.failed = self.rejected = self.truncated = 0
        self.requests = self.retries = self.bytes_sent = 0
        self.last_error: str | None = None
        self.last_error_time: float | None = None

    def error(self, message: str, when: float) -> None:
        self.last_error, self.last_error_time = message, when


@dataclass(frozen=True)
class ExportStats:
    """Counts since :func:`tracekit.configure`, over every exporter it set up.

    Every span queued for export ends up in exactly one of ``exported``, ``dropped``,
    ``failed`` and ``rejected``, or is still in the queue (``queued``).
    """

    #: Spans the collector accepted.
    exported: int = 0
    #: Spans dropped because the export queue was full (``OTEL_BSP_MAX_QUEUE_SIZE``).
    dropped: int = 0
    #: Spans given up on: the collector could not be reached or refused the request.
    failed: int = 0
    #: Spans the collector received but rejected (an OTLP partial success).
    rejected: int = 0
    #: Exported spans whose longest values were cut to fit a request (``tracekit.truncated``).
    truncated: int = 0
    #: Export requests sent, retries included.
    requests: int = 0
    #: Requests sent again after a retryable failure.
    retries: int = 0
    #: Bytes of the request bodies sent (compressed, when compression is on).
    bytes_sent: int = 0
    #: Spans waiting in the export queue now.
    queued: int = 0
    #: The last export problem, as logged, or ``None``.
    last_error: str | None = None
    #: When it happened (seconds since the epoch), or ``None``.
    last_error_time: float | None = None
    #: Unsampled traces exported because a span failed or the local root was slow
    #: (``TRACEKIT_KEEP_ERRORS``, ``TRACEKIT_KEEP_SLOW_MS``).
    kept_traces: int = 0
    #: Unsampled traces discarded before their local root ended, to stay within
    #: ``TRACEKIT_KEEP_BUFFER_SPANS``.
    keep_evicted_traces: int = 0

    @classmethod
    def total(
        cls, parts: Sequence[tuple[Counters, int]], keep: Sequence[tuple[int, int]] = ()
    ) -> ExportStats:
        """Several exporters' counters summed, with their queue lengths and ``(kept, evicted)`` counts."""
        sums = {field.name: 0 for field in fields(cls) if field.name not in _NOT_SUMMED}
        last_error, last_time = None, None
        for counters, queued in parts:
            for name in sums:
                sums[name] += queued if name == "queued" else getattr(counters, name)
            if counters.last_error_time is not None and (
                last_time is None or counters.last_error_time > last_time
            ):
                last_error, last_time = counters.last_error, counters.last_error_time
        kept = sum(count for count, _ in keep)
        evicted = sum(count for _, count in keep)
        return cls(
            **sums,
            last_error=last_error,
            last_error_time=last_time,
            kept_traces=kept,
            keep_evicted_traces=evicted,
        )


_NOT_SUMMED = frozenset({"last_error", "last_error_time", "kept_traces", "keep_evicted_traces"})
