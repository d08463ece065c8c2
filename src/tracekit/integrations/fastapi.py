"""FastAPI: a SERVER span per request of every ``FastAPI`` application, named from its router.

``FastAPI.__call__`` makes the span. FastAPI reports each route its router selects, with
the prefixes of included routers and mounts, to ``fastapi.routing._route_selected`` (in the
versions that have it); that report is the route. Older versions keep the matched
``APIRoute`` in ``scope["route"]``, which is read when the request ends; with the starlette
integration also on, mounts of plain Starlette apps inside a FastAPI app are followed too.

FastAPI's own request telemetry (``FastAPI(telemetry=...)``, in recent versions) is switched
off for each request tracekit traces, so that the request has one SERVER span.
"""

from __future__ import annotations

from typing import Any

from tracekit._compat import instrumented_by_contrib
from tracekit._http_server import KEY
from tracekit._patch import Patches
from tracekit._safety import report
from tracekit.integrations.asgi import traced

__all__ = ["patch", "patches", "unpatch"]

_MOUNT_SUFFIX = "/{path}"


def _call(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if kwargs or len(args) != 3 or instrumented_by_contrib(instance):
        return wrapped(*args, **kwargs)
    return traced("fastapi", "fastapi", wrapped, *args)


def _selected(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    scope = kwargs.get("scope")
    request = scope.get(KEY) if scope is not None else None
    if request is not None:
        try:
            path = kwargs.get("path")
            if isinstance(path, str):
                if kwargs.get("mount"):
                    if path.endswith(_MOUNT_SUFFIX):
                        path = path[: -len(_MOUNT_SUFFIX)]
                    request.prefix += path
                    request.route = request.prefix + _MOUNT_SUFFIX
                else:
                    request.route = request.prefix + path
                request.pending = True
        except Exception as exc:
            report("fastapi", exc)
    return wrapped(*args, **kwargs)


patches = Patches(
    "fastapi",
    {
        "fastapi.applications": [("FastAPI.__call__", _call)],
        "fastapi.routing": [("_route_selected?", _selected)],
    },
)
patch = patches.apply
unpatch = patches.revert
