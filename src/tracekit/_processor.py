"""The batch span processor: export off the application thread, bounded in every way.

It does what the SDK's batch processor does, plus what an application needs from it:

* ``on_end`` only appends to a bounded queue; the network is touched by one worker thread.
* When the queue is three quarters full, ``on_end`` yields the GIL to the worker (a
  ``sleep(0)``): threads making spans faster than one worker can encode them otherwise
  keep the GIL to themselves and the queue overflows. The application then pays for the
  export it causes, instead of losing the spans.
* A full queue drops the span and counts it; the worker (never the application thread)
  logs at most one WARNING per minute saying how many were lost.
* What became of each span is counted (:attr:`BatchSpanProcessor.counters`, read by
  :func:`tracekit.stats`). An exporter with ``counters`` of its own (tracekit's OTLP
  exporter) counts and reports its outcomes itself; for any other, the processor does.
* ``force_flush`` and ``shutdown`` honour their time limits even while an export hangs on
  an unreachable collector, so a process always exits promptly.
* Every export runs with OpenTelemetry's suppress-instrumentation key set, so the
  exporter's own HTTP calls are never traced.
* The worker starts with the first queued span, not before: a process that makes no span
  (a pre-fork server's master) has no thread of tracekit's when it forks.
* A forked child starts with an empty queue and no worker; its own first span starts one
  (see ``tracekit._fork``: nothing runs in the child before that but a reset of three fields).
"""

from __future__ import annotations

import collections
import threading
from time import sleep

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import TraceFlags

from tracekit import _fork
from tracekit._event import Event
from tracekit._logging import RateLimitedCounter, logger
from tracekit._stats import Counters

__all__ = ["BatchSpanProcessor"]

_SAMPLED = TraceFlags.SAMPLED
_SUPPRESS_INSTRUMENTATION_KEY = getattr(
    otel_context, "_SUPPRESS_INSTRUMENTATION_KEY", "suppress_instrumentation"
)


class BatchSpanProcessor(SpanProcessor):
    """Queue ended, sampled spans and export them in batches from a worker thread."""

    _queue: collections.deque[ReadableSpan] | _Dormant
    _worker: threading.Thread | None

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_queue_size: int = 2048,
        max_export_batch_size: int = 512,
        schedule_delay: float = 5.0,
        export_timeout: float = 30.0,
    ) -> None:
        self.exporter = exporter
        self._max_queue_size = max_queue_size
        self._max_export_batch_size = min(max_export_batch_size, max_queue_size)
        self._high_water = max(self._max_export_batch_size, max_queue_size * 3 // 4)
        self._schedule_delay = schedule_delay
        self._export_timeout = export_timeout
        self._shutdown = False
        self._start_lock = _fork.lock()
        self._own_counters = Counters()
        self._reset()
        _fork.in_child(self, BatchSpanProcessor._forget_parent)
        _fork.before_first_span(self, BatchSpanProcessor._reset)

    def _forget_parent(self) -> None:
        # Right after a fork: the parent's queued spans stay the parent's, its worker is gone.
        self._queue = _Dormant(self)
        self._worker = None
        self._dropped_pending = 0
        self._own_counters = Counters()

    @property
    def counters(self) -> Counters:
        """What became of the spans this processor was given (the exporter's, if it counts)."""
        counters = getattr(self.exporter, "counters", None)
        return counters if isinstance(counters, Counters) else self._own_counters

    @property
    def queued(self) -> int:
        """Spans waiting in the queue now."""
        return len(self._queue)

    def _reset(self) -> None:
        # Also in a forked child, at its first span: replaces what a thread of the parent may
        # have held (the wake-up event, flush waiters, counters).
        # Counted by on_end, reported by the worker: the application thread never logs.
        self.dropped = RateLimitedCounter(
            f"tracekit: the export queue is full (OTEL_BSP_MAX_QUEUE_SIZE={self._max_queue_size}); "
            "%d spans were dropped. Is the collector reachable and fast enough?"
        )
        endpoint = getattr(self.exporter, "_endpoint", None)
        target = f" to {endpoint}".replace("%", "%%") if isinstance(endpoint, str) and endpoint else ""
        self.failed = RateLimitedCounter(
            f"tracekit: {type(self.exporter).__name__} could not export %d spans{target}; they are lost. "
            "The exporter's own log lines above say why."
        )
        self._queue = _Dormant(self)
        self._worker = None
        self._queue_lock = _fork.lock()
        self._dropped_pending = 0
        self._flush_waiters: list[threading.Event] = []
        self._lock = _fork.lock()
        self._wake = Event()

    def _start(self) -> collections.deque[ReadableSpan]:
        """The queue, once the worker is running: called by the first span of this process."""
        with self._start_lock:
            queue = self._queue
            if isinstance(queue, _Dormant):
                self._queue = queue = collections.deque()
                worker = threading.Thread(target=self._run, name="tracekit-export", daemon=True)
                # Started by some span's end: the worker must not keep that span's context.
                token = otel_context.attach(otel_context.Context())
                try:
                    worker.start()
                except RuntimeError:  # the interpreter is exiting: flushes export in line
                    return queue
                finally:
                    otel_context.detach(token)
                self._worker = worker
            return queue

    def on_end(self, span: ReadableSpan) -> None:
        # Runs for every span: no lock on the way in. deque.append and len() are atomic,
        # so the queue can outgrow its bound by at most one span per thread racing here.
        _, _, _, flags, _, _ = span.context  # SpanContext is a tuple: no call per field
        if self._shutdown or not flags & _SAMPLED:
            return
        queue = self._queue
        if len(queue) >= self._max_queue_size:
            with self._queue_lock:
                self._dropped_pending += 1
            return
        queue.append(span)
        if len(queue) >= self._max_export_batch_size:
            # Set again on every span until the worker has drained the queue. Skipping the
            # call while the event was already set made the worker fall behind a busy
            # application thread (the sqlite3 benchmark dropped spans within 4,200 of them,
            # and the peer's worker in the same process too), presumably because the worker
            # then waited longer for the GIL: keep it.
            self._wake.set()
            if len(queue) >= self._high_water:
                # The worker is falling behind: let it have the GIL now rather than when the
                # interpreter's switch interval says (5 ms, thousands of spans later).
                sleep(0)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export every queued span; ``False`` if that took longer than the time limit."""
        if self._shutdown:
            return False
        worker = self._worker
        if worker is None:  # nothing queued yet, or no thread could be started: export in line
            self._export_queued()
            return True
        if not worker.is_alive():
            return False
        done = threading.Event()
        with self._lock:
            self._flush_waiters.append(done)
        self._wake.set()
        return done.wait(timeout_millis / 1000.0)

    def flush_from_signal_handler(self, timeout: float) -> bool:
        """Export what is queued, from a signal handler: no lock the interrupted thread may hold.

        The worker does the export; this only queues a waiter (a list append, atomic) and
        wakes the worker without blocking, then waits at most ``timeout`` seconds. A refused
        connection is not retried from here on: the process is about to end.
        """
        worker = self._worker
        if self._shutdown:  # a shutdown under way (an exit flush the signal interrupted): let it end
            if worker is not None and worker.is_alive():
                worker.join(timeout)
            return worker is None or not worker.is_alive()
        begin_shutdown = getattr(self.exporter, "begin_shutdown", None)
        if begin_shutdown is not None:
            begin_shutdown()
        if worker is None or not worker.is_alive():
            return isinstance(self._queue, _Dormant)  # nothing was ever queued: nothing to do
        done = threading.Event()
        self._flush_waiters.append(done)
        self._wake.set_from_signal_handler()
        return done.wait(timeout)

    def shutdown(self, timeout_millis: int | None = None) -> None:
        """Export what is queued (within the time limit), then shut the exporter down."""
        if self._shutdown:
            return
        timeout = self._export_timeout if timeout_millis is None else timeout_millis / 1000.0
        begin_shutdown = getattr(self.exporter, "begin_shutdown", None)
        if begin_shutdown is not None:  # tracekit's OTLP exporter: no retry of a refused connection
            begin_shutdown()
        self._shutdown = True
        worker = self._worker
        if worker is None:
            self._export_queued()
        else:
            self._wake.set()
            worker.join(timeout)
        if worker is not None and worker.is_alive():
            logger.warning(
                "tracekit: spans still exporting after %.1f s at shutdown; giving up on them", timeout
            )
        self._report_dropped()
        self.dropped.flush()
        self.failed.flush()
        try:
            self.exporter.shutdown()
        except Exception:
            logger.warning("tracekit: %s failed to shut down", type(self.exporter).__name__, exc_info=True)

    def _run(self) -> None:
        prepare = getattr(self.exporter, "prepare", None)  # tracekit's OTLP exporter: build it now
        if prepare is not None:
            try:
                prepare()
            except Exception:
                logger.warning("tracekit: %s failed to start", type(self.exporter).__name__, exc_info=True)
        while True:
            self._wake.wait(self._schedule_delay)
            self._wake.clear()
            with self._lock:
                waiters, self._flush_waiters = self._flush_waiters, []
            self._export_queued()
            self._report_dropped()
            for waiter in waiters:
                waiter.set()
            if self._shutdown:
                return

    def _report_dropped(self) -> None:
        with self._queue_lock:
            count, self._dropped_pending = self._dropped_pending, 0
        if count:
            self.counters.dropped += count
            self.dropped.add(count)

    def _export_queued(self) -> None:
        queue = self._queue
        if isinstance(queue, _Dormant):  # no span was ever queued in this process
            return
        token = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            while queue:
                count = min(len(queue), self._max_export_batch_size)
                batch = [queue.popleft() for _ in range(count)]
                self._export(batch)
        finally:
            otel_context.detach(token)

    def _export(self, batch: list[ReadableSpan]) -> None:
        counters = self.counters
        counted = counters is not self._own_counters  # the exporter counts and reports itself
        try:
            result = self.exporter.export(batch)
        except Exception:
            logger.warning("tracekit: %s raised while exporting", type(self.exporter).__name__, exc_info=True)
            result = SpanExportResult.FAILURE
            counted = False  # whatever it counted, this batch is lost
        if counted:
            return
        if result is SpanExportResult.SUCCESS:
            counters.exported += len(batch)
        else:
            counters.failed += len(batch)
            self.failed.add(len(batch))


class _Dormant:
    """The queue of a processor whose worker has not started: appending starts it.

    ``on_end`` reads the processor's queue on every span; once the worker runs that is a
    plain deque, so the per-span path has no check for a worker.
    """

    __slots__ = ("_processor",)

    def __init__(self, processor: BatchSpanProcessor) -> None:
        self._processor = processor

    def __len__(self) -> int:
        return 0

    def append(self, span: ReadableSpan) -> None:
        _fork.first_span()
        processor = self._processor
        queue = processor._start()
        queue.append(span)
        if len(queue) >= processor._max_export_batch_size:
            processor._wake.set()
