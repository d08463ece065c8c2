"""Flush what is queued as the process ends, whichever way it ends.

* An ordinary exit runs :func:`flush_at_exit` from ``atexit``.
* A ``multiprocessing`` child (every start method, pools and ``ProcessPoolExecutor``
  included) ends with ``os._exit()``, which skips ``atexit``. Its queued spans are flushed
  by a multiprocessing finalizer that runs as the child's work returns, after the child's
  own finalizers.
* A process of Celery's prefork pool leaves with ``os._exit()`` from inside its work, where
  no finalizer runs either: it is flushed from Celery's ``worker_process_shutdown`` signal,
  which the pool sends in the process just before.

The flush is bounded by the export timeout (``OTEL_EXPORTER_OTLP_TIMEOUT`` and
``OTEL_BSP_EXPORT_TIMEOUT``, whichever is shorter).
"""

from __future__ import annotations

import atexit
import sys
from types import ModuleType

from tracekit import _state
from tracekit._importhook import when_imported
from tracekit._safety import report

__all__ = ["flush_at_exit", "watch_celery", "watch_multiprocessing"]


def flush_at_exit() -> None:
    """Shut configured tracing down, exporting what is queued within the export timeout."""
    tracing = _state.current
    if tracing is not None and tracing.enabled:
        tracing.shutdown(min(tracing.settings.timeout, tracing.settings.bsp_export_timeout))


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
