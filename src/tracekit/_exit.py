"""Flush what is queued as the process ends, whichever way it ends.

* An ordinary exit runs :func:`flush_at_exit` from ``atexit``.
* A ``multiprocessing`` child (every start method, pools and ``ProcessPoolExecutor``
  included) ends with ``os._exit()``, which skips ``atexit``. Its queued spans are flushed
  by a multiprocessing finalizer that runs as the child's work returns, after the child's
  own finalizers.
* A process of Celery's prefork pool leaves with ``os._exit()`` from inside its work, where
  no finalizer runs either: it is flushed from Celery's ``worker_process_shutdown`` signal,
  which the pool sends in the process just before.
* SIGTERM (and SIGINT, where its disposition is the operating system's default rather than
  Python's ``KeyboardInterrupt``) would end the process with no exit handler run: where the
  application has left the default in place, :func:`watch_signals` installs a handler that
  flushes, then restores the default and raises the signal again, so the process ends
  exactly as it would have (killed by that signal: exit status -15, or 143 in a shell). A
  handler the application installs later replaces it; a server that saves it, installs its
  own and restores it before raising the signal again (uvicorn) has it run then.

The flush is bounded by the export timeout (``OTEL_EXPORTER_OTLP_TIMEOUT`` and
``OTEL_BSP_EXPORT_TIMEOUT``, whichever is shorter), and a refused connection ends it at once.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
from types import FrameType, ModuleType
from typing import TYPE_CHECKING

from tracekit import _state
from tracekit._importhook import when_imported
from tracekit._safety import report

if TYPE_CHECKING:
    from tracekit._settings import Settings

__all__ = ["flush_at_exit", "flush_before_the_end", "watch_celery", "watch_multiprocessing", "watch_signals"]


def flush_at_exit() -> None:
    """Export what is queued, within the export timeout, and stop exporting.

    Only the span processors are shut down: patches, propagators and logging stay as they
    are. Undoing them would import and define code as the interpreter ends, and defining a
    dataclass there (its methods are made with ``exec``) makes CPython forget that an
    uncaught ``KeyboardInterrupt`` is ending the process: it would exit with status 1
    instead of being killed by SIGINT.
    """
    tracing = _state.current
    if tracing is None or not tracing.enabled or tracing.provider is None:
        return
    from tracekit._configure import _processors
    from tracekit._processor import BatchSpanProcessor

    deadline = time.monotonic() + _flush_limit(tracing.settings)
    for processor in _processors(tracing.provider):
        if isinstance(processor, BatchSpanProcessor):
            processor.shutdown(int(max(0.0, deadline - time.monotonic()) * 1000))
        else:
            processor.force_flush(int(max(0.0, deadline - time.monotonic()) * 1000))


def _flush_limit(settings: Settings) -> float:
    """How long flushing at the end may take: the shorter of the two export timeouts."""
    return min(settings.timeout, settings.bsp_export_timeout)


#: The signals whose default disposition ends the process without running exit handlers.
_FATAL_SIGNALS = ("SIGTERM", "SIGINT")


def watch_signals() -> None:
    """Flush before SIGTERM (and a default SIGINT) ends the process; see the module's docstring.

    Only from the main thread (Python allows no other to set a handler), and only for a
    signal whose handler is still the operating system's default.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for name in _FATAL_SIGNALS:
        number = getattr(signal, name, None)
        if number is None:
            continue
        try:
            if signal.getsignal(number) is signal.SIG_DFL:
                signal.signal(number, _flush_then_end)
        except (OSError, ValueError) as exc:  # an embedding interpreter may refuse
            report("signals", exc)


def _flush_then_end(number: int, frame: FrameType | None) -> None:
    """The handler: flush without waiting on any lock, then end as the default would."""
    try:
        flush_before_the_end()
    except Exception as exc:
        report("signals", exc)
    signal.signal(number, signal.SIG_DFL)
    os.kill(os.getpid(), number)


def flush_before_the_end() -> None:
    """Export what is queued, for a process about to be ended by a signal; safe in a handler.

    Waits on no lock another thread (or the interrupted code) may hold, retries no refused
    connection, and takes at most the export timeout. Servers that end by raising the
    signal again after their graceful shutdown (uvicorn) call it as that shutdown ends.
    """
    tracing = _state.current
    if tracing is None or not tracing.enabled or tracing.provider is None:
        return
    from tracekit._configure import _processors

    deadline = time.monotonic() + _flush_limit(tracing.settings)
    for processor in _processors(tracing.provider):
        flush = getattr(processor, "flush_from_signal_handler", None)
        if flush is not None:
            flush(max(0.0, deadline - time.monotonic()))


atexit.register(flush_at_exit)


class _Token:
    """A weakly referenceable key for multiprocessing's after-fork registry."""


_TOKEN = _Token()
_watched: set[int] = set()


def watch_multiprocessing() -> None:
    """Flush in every multiprocessing child from now on (waits for ``multiprocessing.util``)."""
    when_imported("multiprocessing.util", _watch)


def _watch(util: ModuleType) -> None:
    if id(util) not in _watched:
        _watched.add(id(util))
        # Runs in each new child before its work starts, after its finalizers were cleared.
        util.register_after_fork(_TOKEN, lambda _: _flush_at_child_exit(util))
    process = sys.modules.get("multiprocessing.process")
    if process is not None and process.parent_process() is not None:
        _flush_at_child_exit(util)  # configured inside a child's work


def _flush_at_child_exit(util: ModuleType) -> None:
    # Negative priority: after the child's own finalizers and after it has joined its children.
    util.Finalize(None, flush_at_exit, exitpriority=-100)


def watch_celery() -> None:
    """Flush every process of Celery's prefork pool as it ends (waits for ``celery.signals``)."""
    global _watching_celery
    if not _watching_celery:
        _watching_celery = True
        when_imported("celery.signals", _connect)


_watching_celery = False


def _connect(signals: ModuleType) -> None:
    signals.worker_process_shutdown.connect(_flush_pool_process, weak=False, dispatch_uid="tracekit")


def _flush_pool_process(**_: object) -> None:
    try:
        flush_at_exit()
    except Exception as exc:  # the pool process must end as it would have
        report("celery", exc)
