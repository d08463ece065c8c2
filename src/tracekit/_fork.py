"""What a forked child needs so that its spans are its own and reach the collector.

A child made by ``fork()`` (gunicorn workers, ``--preload`` included; multiprocessing's
``fork`` start method) inherits its parent's configured tracing. The batch processor
restarts its export thread by itself (see ``_processor``) and the OTLP exporter opens
connections of its own (see ``exporters/_otlp.py``); this module does the rest, from an
``os.register_at_fork`` hook that runs in the child right after the fork, while it has a
single thread:

* the resource says who emitted the spans: ``process.pid`` becomes the child's, and
  ``service.instance.id`` a new one, each time only when tracekit chose the value (values
  given in ``OTEL_RESOURCE_ATTRIBUTES`` are kept). The resource object is shared by the
  provider, its tracers and their spans, so it is updated in place;
* a multiprocessing child ends with ``os._exit()``, which skips ``atexit``: its queued
  spans are flushed by a multiprocessing finalizer instead, as the child exits.
"""

from __future__ import annotations

import os
import sys
import uuid
import weakref
from typing import Any

from tracekit import _state

__all__ = ["watch"]

_watching = False


class _Token:
    """A weakly referenceable key for multiprocessing's after-fork registry."""


_TOKEN = _Token()
_registered_with_multiprocessing = False


def watch(provider: Any) -> None:
    """Install the fork hooks for ``provider`` (no-op where ``fork`` does not exist).

    Registered after the provider's own (the SDK's fork hook merges its default resource,
    with a service.instance.id of its own, over the provider's), so this one runs after it.
    """
    global _watching
    if not hasattr(os, "register_at_fork"):
        return
    if not _watching:
        _watching = True
        os.register_at_fork(before=_before_fork)
    ref = weakref.ref(provider)

    def after_fork_in_child() -> None:
        tracing = _state.current
        current = ref()
        if current is None or tracing is None or tracing.provider is not current:
            return
        resource: Any = getattr(current, "resource", None)
        try:
            _refresh_resource(resource, tracing.settings.resource_attributes)
        except Exception as exc:  # never stop a fork over tracing
            from tracekit._safety import report

            report("fork", exc)

    os.register_at_fork(after_in_child=after_fork_in_child)


def _before_fork() -> None:
    global _registered_with_multiprocessing
    util = sys.modules.get("multiprocessing.util")
    if util is None or _registered_with_multiprocessing:
        return
    _registered_with_multiprocessing = True
    util.register_after_fork(_TOKEN, _in_multiprocessing_child)


def _refresh_resource(resource: Any, given: Any) -> None:
    from opentelemetry.sdk.resources import Resource

    attributes = dict(resource.attributes)
    attributes["process.pid"] = given.get("process.pid", os.getpid())
    attributes["service.instance.id"] = given.get("service.instance.id", str(uuid.uuid4()))
    resource._attributes = Resource(attributes, resource.schema_url)._attributes


def _in_multiprocessing_child(_: object) -> None:
    from multiprocessing.util import Finalize

    from tracekit._configure import _flush_at_exit

    # Negative priority: after the child's own finalizers and after it has joined its children.
    Finalize(None, _flush_at_exit, exitpriority=-100)
