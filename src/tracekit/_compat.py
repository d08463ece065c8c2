"""OpenTelemetry's private parts that tracekit's process lifecycle relies on, each with its fallback.

Every name here is pinned by a contract test (``tests/test_compat.py``): an SDK release that
renames or reshapes one fails that test, and tracekit falls back to the public behaviour
described next to the name rather than diverging.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.resources import Resource

__all__ = ["TracerProvider", "replace_resource_attributes"]


class TracerProvider(sdk_trace.TracerProvider):
    """The SDK's tracer provider, minus the SDK's own work in a forked child.

    From opentelemetry-sdk 1.4x on, the provider registers an after-fork hook
    (``_handle_fork``) that re-runs the process resource detectors through a
    ``concurrent.futures`` thread pool in the child. A child forked after the application
    imported ``concurrent.futures.thread`` waits there forever: that module's own
    after-fork handler, which releases the pool's global lock, runs after the provider's.
    tracekit refreshes the resource itself, lock-free (``tracekit._sdk``), so here the hook
    only replaces the lock the SDK guards its tracers with. On an SDK without the hook the
    override is never called, and nothing is lost.
    """

    def _handle_fork(self) -> None:
        if hasattr(self, "_tracers_lock"):
            self._tracers_lock = threading.Lock()


def replace_resource_attributes(resource: Resource, attributes: Mapping[str, Any]) -> bool:
    """Give ``resource`` these attributes, in place; ``False`` where the SDK does not allow it.

    The provider, its tracers and the spans they made share one resource object, so a
    forked child changes that object rather than hunting for every holder. The fallback
    (``False``) leaves the parent's values: spans still arrive, labelled with the parent's
    ``process.pid``.
    """
    if not isinstance(getattr(resource, "_attributes", None), Mapping):
        return False
    resource._attributes = Resource(dict(attributes), resource.schema_url)._attributes
    return True
