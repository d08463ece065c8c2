"""tracekit's OTLP span exporter: its own encoder and transports, retries as the specification says.

A batch of spans becomes one or more requests of at most ``max_request_bytes``
(:mod:`tracekit.exporters._encode`), each sent over httpx or a gRPC channel
(:mod:`tracekit.exporters._transport`) and retried on the failures the OTLP specification
calls retryable: exponential back-off with jitter, the collector's ``Retry-After`` or
``RetryInfo`` honoured, never past the request's deadline (``OTEL_EXPORTER_OTLP_TIMEOUT``).
What could not be delivered is counted (:func:`tracekit.stats`) and reported once per cause
and minute (:mod:`tracekit.exporters._problems`), never once per attempt.

The transport's modules (httpx, grpc) are imported and its connection made on the export
thread, as it starts: a process that never exports a span never pays for them.
"""

from __future__ import annotations

import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tracekit import _fork
from tracekit._event import Event
from tracekit._logging import logger
from tracekit._settings import Settings
from tracekit._stats import Counters
from tracekit.exporters._problems import Problems

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

    from tracekit.exporters._encode import Encoder, Request
    from tracekit.exporters._transport import Outcome

__all__ = ["OTLPSpanExporter", "Transport", "import_grpc_transport", "make_transport", "traces_endpoint"]

_DEFAULT_HTTP = "http://localhost:4318"
_DEFAULT_GRPC = "http://localhost:4317"
#: The first retry waits about this long; each next one twice as long (with jitter).
_FIRST_BACKOFF = 1.0
#: The longest one wait between retries.
_MAX_BACKOFF = 32.0


def traces_endpoint(settings: Settings, sources: dict[str, str] | None = None) -> str:
    """The URL spans are sent to, by the specification's rules.

    A signal-specific endpoint is used as given; a base endpoint gets ``/v1/traces``
    appended for http/protobuf. A keyword ``endpoint=`` wins over both variables.
    """
    keyword_base = sources is not None and sources.get("endpoint") == "keyword"
    keyword_traces = sources is not None and sources.get("traces_endpoint") == "keyword"
    if settings.traces_endpoint and (keyword_traces or not keyword_base):
        return settings.traces_endpoint
    if settings.protocol == "grpc":
        return settings.endpoint or _DEFAULT_GRPC
    base = settings.endpoint or _DEFAULT_HTTP
    if "://" not in base:
        base = ("http://" if settings.insecure else "https://") + base
    return base.rstrip("/") + "/v1/traces"


class Transport(Protocol):
    """What the exporter needs of a transport (:mod:`tracekit.exporters._transport`)."""

    endpoint: str

    def send(self, body: bytes, timeout: float) -> Outcome: ...

    def close(self) -> None: ...


#: The longest ``fork()`` waits for an exporter's first export to finish.
FORK_WAIT = 5.0


class OTLPSpanExporter(SpanExporter):
    """Exports spans over OTLP (http/protobuf or grpc) as ``settings`` say, to ``endpoint``.

    ``counters`` hold what became of every span it was given; the batch processor reads
    them for :func:`tracekit.stats` and leaves the counting and reporting to the exporter.

    Fork safety: ``fork()`` waits (up to :data:`FORK_WAIT` seconds) for the first export in
    progress, which imports the transport's modules on the export thread: a child forked
    meanwhile would inherit a module lock held by a thread it does not have. A forked child
    makes its own connection on first use; the parent's (a keep-alive socket, a gRPC
    channel) is kept, unused, so that nothing in the child closes what the parent uses.
    """

    def __init__(
        self, settings: Settings, endpoint: str, *, transport: Callable[[], Transport] | None = None
    ) -> None:
        self.settings = settings
        self.counters = Counters()
        self._connect = transport or (lambda: make_transport(settings, endpoint))
        self._lock = _fork.lock()
        self._first_export = _fork.lock()
        self._first_export_done = False
        self._waited_for_first_export = False
        self._transport: Transport | None = None
        self._encoder: Encoder | None = None
        self._closing = False
        self._closing_now = Event()
        self._stopped = threading.Event()
        self._abandoned: list[Transport] = []
        self.endpoint = urlsplit(endpoint).netloc or endpoint if settings.protocol == "grpc" else endpoint
        self.problems = Problems(self.endpoint)
        _fork.in_child(self, OTLPSpanExporter._after_fork_in_child)
        if hasattr(os, "register_at_fork"):
            ref = weakref.ref(self)

            def call(method: Callable[[OTLPSpanExporter], None]) -> Callable[[], None]:
                def hook() -> None:
                    exporter = ref()
                    if exporter is not None:
                        method(exporter)

                return hook

            os.register_at_fork(
                before=call(OTLPSpanExporter._before_fork),
                after_in_parent=call(OTLPSpanExporter._after_fork_in_parent),
            )

    def prepare(self) -> None:
        """Import the transport's modules and connect; the export thread calls this as it starts.

        So the imports, and gRPC's threads, come with a process's first span: not at
        ``configure()`` (a pre-fork master that makes no span stays single-threaded) and not
        at exit (where Python refuses to start the threads gRPC needs). A fork meanwhile
        waits for it, as for the first export.
        """
        with self._first_export:
            self._ready()

    def import_modules(self) -> None:
        """Import, on the calling thread, every module exporting will import; start no thread.

        For a server that forks with no hook Python can run first (uWSGI): a child forked
        while the export thread is importing a module would wait for that module for ever.
        """
        import tracekit.exporters._encode  # noqa: F401

        if self.settings.protocol == "grpc":
            import_grpc_transport()  # connecting would start gRPC's threads
        else:
            self.prepare()

    def begin_shutdown(self) -> None:
        """From now on a refused connection is not retried: the process is on its way out.

        A wait before a retry already under way ends now; the retry happens only for a
        cause other than a refused connection, when its time comes.
        """
        if self._closing:  # also the answer for a signal handler that interrupted this very call
            return
        self._closing = True
        self._closing_now.set_from_signal_handler()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Send ``spans``; ``SUCCESS`` when every request was delivered (even partly rejected)."""
        if self._stopped.is_set():
            self.counters.failed += len(spans)
            return SpanExportResult.FAILURE
        if self._first_export_done:
            return self._export(spans)
        with self._first_export:
            try:
                return self._export(spans)
            finally:
                self._first_export_done = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        """Stop retrying, report what is still unreported, close the connection."""
        self._closing = True
        self._closing_now.set()
        self._stopped.set()
        self.problems.flush()
        with self._lock:
            transport, self._transport = self._transport, None
        if transport is not None:
            try:
                transport.close()
            except Exception:
                logger.debug("tracekit: closing the OTLP connection failed", exc_info=True)

    # ------------------------------------------------------------------ sending

    def _ready(self) -> tuple[Encoder, Transport]:
        with self._lock:
            if self._encoder is None:
                from tracekit.exporters._encode import Encoder

                self._encoder = Encoder(self.settings.export_max_request_size)
            if self._transport is None:
                self._transport = self._connect()
            return self._encoder, self._transport

    def _export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        counters = self.counters
        try:
            encoder, transport = self._ready()
        except Exception as exc:
            logger.warning(
                "tracekit: could not set up the OTLP exporter for %s", self.endpoint, exc_info=True
            )
            self._lost("exporter error", len(spans), f"{type(exc).__name__}: {exc}")
            return SpanExportResult.FAILURE
        truncated, unfit = encoder.truncated, encoder.unfit
        requests = encoder.encode(spans)
        counters.truncated += encoder.truncated - truncated
        if encoder.unfit - unfit:
            self._lost("span too large", encoder.unfit - unfit, f"over {encoder.max_request_bytes} bytes")
        delivered = True
        for request in requests:
            delivered = self._deliver(transport, request) and delivered
        return SpanExportResult.SUCCESS if delivered else SpanExportResult.FAILURE

    def _deliver(self, transport: Transport, request: Request) -> bool:
        """Send one request, retrying as allowed until its deadline; count what became of it."""
        counters = self.counters
        deadline = time.monotonic() + self.settings.timeout
        attempt = 0
        while True:
            outcome = transport.send(request.body, max(deadline - time.monotonic(), 0.001))
            counters.requests += 1
            if outcome.delivered:
                counters.bytes_sent += len(request.body)
                rejected = min(outcome.rejected, request.spans)
                counters.exported += request.spans - rejected
                if rejected:
                    counters.rejected += rejected
                    self._note("rejected by the collector", rejected, outcome.detail)
                return True
            wait = self._retry_wait(outcome, attempt, deadline)
            if wait is None:
                self._lost(outcome.cause, request.spans, self._explain(outcome))
                return False
            if not self._wait(wait, outcome):
                self._lost(outcome.cause, request.spans, self._explain(outcome))
                return False
            counters.retries += 1
            attempt += 1

    def _wait(self, seconds: float, outcome: Outcome) -> bool:
        """Wait before a retry; ``False`` when shutting down means it must not happen."""
        until = time.monotonic() + seconds
        if self._closing_now.wait(seconds):
            if self._stopped.is_set() or outcome.cause == "connection refused":
                return False
            return not self._stopped.wait(max(0.0, until - time.monotonic()))
        return True

    def _retry_wait(self, outcome: Outcome, attempt: int, deadline: float) -> float | None:
        """How long to wait before sending again, or ``None`` to give up."""
        if not outcome.retryable or (self._closing and outcome.cause == "connection refused"):
            return None
        if outcome.retry_after is not None:
            wait = outcome.retry_after
        else:
            wait = min(_FIRST_BACKOFF * 2**attempt, _MAX_BACKOFF) * random.uniform(0.8, 1.2)
        return wait if time.monotonic() + wait < deadline else None

    def _explain(self, outcome: Outcome) -> str:
        if outcome.cause == "TLS verification failed":
            checked = self.settings.certificate or "the system CA bundle"
            return f"{outcome.detail}; it was checked against {checked}"
        return outcome.detail

    def _lost(self, cause: str, spans: int, detail: str) -> None:
        self.counters.failed += spans
        self._note(cause, spans, detail)

    def _note(self, cause: str, spans: int, detail: str) -> None:
        message = f"{cause}: {detail}" if detail and detail != cause else cause
        self.counters.error(message, time.time())
        self.problems.add(cause, spans, detail)

    # ------------------------------------------------------------------ fork

    def _before_fork(self) -> None:
        if not self._first_export_done:
            self._waited_for_first_export = self._first_export.acquire(timeout=FORK_WAIT)
        self._lock.acquire()

    def _after_fork_in_parent(self) -> None:
        self._lock.release()
        if self._waited_for_first_export:
            self._waited_for_first_export = False
            self._first_export.release()

    def _after_fork_in_child(self) -> None:
        # Both locks were made with _fork.lock(): the child finds them released.
        self._first_export_done = False
        self._waited_for_first_export = False
        self.counters = Counters()
        if self._transport is not None:
            self._abandoned.append(self._transport)
            self._transport = None


def make_transport(settings: Settings, endpoint: str) -> Transport:
    """The transport for ``settings.protocol``, connected to ``endpoint``."""
    from tracekit.exporters._transport import GRPCTransport, HTTPTransport

    if settings.protocol == "grpc":
        scheme = urlsplit(endpoint).scheme if "://" in endpoint else ""
        return GRPCTransport(
            endpoint,
            insecure=scheme == "http" or (scheme == "" and settings.insecure),
            headers=dict(settings.headers),
            gzip_body=settings.compression == "gzip",
            certificate=settings.certificate,
            client_key=settings.client_key,
            client_certificate=settings.client_certificate,
        )
    return HTTPTransport(
        endpoint,
        headers=dict(settings.headers),
        timeout=settings.timeout,
        gzip_body=settings.compression == "gzip",
        certificate=settings.certificate,
        client_key=settings.client_key,
        client_certificate=settings.client_certificate,
    )


def import_grpc_transport() -> None:
    """Import grpc: no thread starts until a channel is made."""
    import grpc  # noqa: F401

    import tracekit.exporters._transport  # noqa: F401
