"""Starlette: a SERVER span per request of every ``Starlette`` application, named from its router.

``Starlette.__call__`` makes the span (FastAPI applications are left to the fastapi
integration). The route is the router's own result, read as it hands the request over:
``Route.handle`` / ``WebSocketRoute.handle`` give the matched route's template and
``Mount.handle`` the prefix of a mounted application, so ``Mount("/api", routes=[Route(
"/items/{id:int}", ...)])`` gives ``/api/items/{id}``. No route is matched twice.
"""

from __future__ import annotations

import sys
from typing import Any

from tracekit._compat import instrumented_by_contrib
from tracekit._http_server import KEY
from tracekit._patch import Patches
from tracekit._safety import report
from tracekit.integrations.asgi import traced

__all__ = ["patch", "patches", "unpatch"]

_MOUNT_SUFFIX = "/{path}"


def _call(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    fastapi = sys.modules.get("fastapi.applications")
    if (
        kwargs
        or len(args) != 3
        or (fastapi is not None and isinstance(instance, fastapi.FastAPI))
        or instrumented_by_contrib(instance)
    ):
        return wrapped(*args, **kwargs)
    return traced("starlette", "starlette", wrapped, *args)


def _scope(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return args[0] if args else kwargs.get("scope")


def _route(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    request = _scope(args, kwargs).get(KEY)
    if request is not None:
        try:
            if request.pending:  # FastAPI's router reported this route, with its prefixes
                request.pending = False
            else:
                request.route = request.prefix + instance.path_format
        except Exception as exc:
            report("starlette", exc)
    return wrapped(*args, **kwargs)


def _mount(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    request = _scope(args, kwargs).get(KEY)
    if request is not None:
        try:
            if request.pending:
                request.pending = False
            else:
                path_format: str = instance.path_format
                if path_format.endswith(_MOUNT_SUFFIX):
                    path_format = path_format[: -len(_MOUNT_SUFFIX)]
                request.prefix += path_format
                request.route = request.prefix + _MOUNT_SUFFIX
        except Exception as exc:
            report("starlette", exc)
    return wrapped(*args, **kwargs)


patches = Patches(
    "starlette",
    {
        "starlette.applications": [("Starlette.__call__", _call)],
        "starlette.routing": [
            ("Route.handle", _route),
            ("WebSocketRoute.handle", _route),
            ("Mount.handle", _mount),
        ],
    },
)
patch = patches.apply
unpatch = patches.revert
