"""One WARNING per cause of lost spans, at most once a minute, with counts.

An exporter that logs every failed attempt floods the application's logs exactly when the
collector is in trouble. :class:`Problems` collects failures by cause and reports each cause
at once the first time, then at most once per interval with the number of spans lost since,
the endpoint, what the collector or network said and what to do about it.
"""

from __future__ import annotations

import time

from tracekit import _fork
from tracekit._logging import logger

__all__ = ["Problems"]

_HINTS = {
    "connection refused": "is the collector running there? To see spans locally instead, "
    "set OTEL_TRACES_EXPORTER=console",
    "host not found": "check the host name of the endpoint. To see spans locally instead, "
    "set OTEL_TRACES_EXPORTER=console",
    "timeout": "the collector did not answer within OTEL_EXPORTER_OTLP_TIMEOUT",
    "TLS verification failed": "set OTEL_EXPORTER_OTLP_CERTIFICATE to the CA bundle (PEM) that "
    "signed the collector's certificate",
    "TLS handshake failed": "if the collector requires a client certificate, set "
    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY; if it speaks "
    "plain text, use an http:// endpoint",
    "HTTP 413": "a request was larger than the collector accepts: lower "
    "TRACEKIT_EXPORT_MAX_REQUEST_SIZE or OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "rejected by the collector": "the collector accepted the request but not these spans",
}


class _Cause:
    __slots__ = ("detail", "pending", "reported_at")

    def __init__(self) -> None:
        self.pending = 0
        self.detail = ""
        self.reported_at: float | None = None


class Problems:
    """Counts lost spans by cause and reports each cause at most once per ``interval``."""

    def __init__(self, endpoint: str, interval: float = 60.0) -> None:
        self._endpoint = endpoint
        self._interval = interval
        self._lock = _fork.lock()
        self._causes: dict[str, _Cause] = {}
        #: Whether to log at all (``tracekit doctor`` reports its probe's outcome itself).
        self.report = True

    def add(self, cause: str, spans: int, detail: str) -> None:
        """Count ``spans`` lost to ``cause``; report now if this cause has been quiet long enough."""
        now = time.monotonic()
        with self._lock:
            entry = self._causes.get(cause)
            if entry is None:
                entry = self._causes[cause] = _Cause()
            entry.pending += spans
            entry.detail = detail
            first = entry.reported_at is None
            if entry.reported_at is not None and now - entry.reported_at < self._interval:
                return
            count, entry.pending, entry.reported_at = entry.pending, 0, now
        self._report(cause, count, detail, first=first)

    def flush(self) -> None:
        """Report every count not reported yet (at shutdown)."""
        with self._lock:
            pending = [
                (cause, entry.pending, entry.detail) for cause, entry in self._causes.items() if entry.pending
            ]
            for entry in self._causes.values():
                entry.pending = 0
        for cause, count, detail in pending:
            self._report(cause, count, detail, first=False)

    def _report(self, cause: str, count: int, detail: str, *, first: bool) -> None:
        if not self.report:
            return
        since = "" if first else f" in the last {self._interval:g} s"
        hint = _HINTS.get(cause)
        logger.warning(
            "tracekit: %d spans could not be delivered to %s%s: %s%s%s",
            count,
            self._endpoint,
            since,
            cause,
            f" ({detail})" if detail and detail != cause else "",
            f"; {hint}" if hint else "",
        )
