"""hypercorn: a SERVER span per request of any ASGI application hypercorn serves.

``ASGIWrapper.__call__``, through which hypercorn calls an ASGI application for each
request and connection, is wrapped; WSGI applications served by hypercorn are left to the
WSGI middleware and the flask and django integrations.
"""

from __future__ import annotations

from typing import Any

from tracekit._compat import instrumented_by_contrib
from tracekit._patch import Patches
from tracekit.integrations.asgi import Receive, Scope, Send, framework_app, traced

__all__ = ["patch", "patches", "unpatch"]


def _call(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if kwargs or len(args) != 5:
        return wrapped(*args, **kwargs)
    framework, kind = framework_app(instance.app)
    if instrumented_by_contrib(framework):
        return wrapped(*args, **kwargs)
    scope, receive, send, sync_spawn, call_soon = args

    def app(scope: Scope, receive: Receive, send: Send) -> Any:
        return wrapped(scope, receive, send, sync_spawn, call_soon)

    return traced("hypercorn", kind, app, scope, receive, send)


patches = Patches("hypercorn", {"hypercorn.app_wrappers": [("ASGIWrapper.__call__", _call)]})
patch = patches.apply
unpatch = patches.revert
