"""Django: a SERVER span per request of a Django project served over WSGI, named from its URLconf.

``WSGIHandler.__call__`` makes the span; ``BaseHandler.resolve_request`` reads the route of
the resolved URL pattern (``resolver_match.route``, Django's own template format, with the
patterns of included URLconfs joined, given a leading ``/``); and
``handle_uncaught_exception``, which Django calls for an exception no middleware handled
(before it answers 500), records that exception on the span. Under ASGI (a Django project
served by uvicorn or hypercorn) the server integration makes the span and these two hooks
still report the route and the exception.
"""

from __future__ import annotations

from typing import Any

from tracekit._http_server import KEY
from tracekit._patch import Patches
from tracekit._safety import guard
from tracekit.integrations.wsgi import traced

__all__ = ["patch", "patches", "unpatch"]


def _call(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if kwargs or len(args) != 2:
        return wrapped(*args, **kwargs)
    return traced("django", "django", wrapped, *args)


def _traced_request(request: Any) -> Any:
    # A WSGIRequest's META is the environ itself; an ASGIRequest keeps its scope.
    found = request.META.get(KEY)
    if found is None:
        scope = getattr(request, "scope", None)
        if scope is not None:
            found = scope.get(KEY)
    return found


def _route(match: Any) -> str | None:
    route = getattr(match, "route", None)
    if not isinstance(route, str):
        return None
    return route if route.startswith(("/", "^")) else "/" + route


def _resolve(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    match = wrapped(*args, **kwargs)
    with guard("django"):
        request = args[0] if args else kwargs.get("request")
        traced_request = _traced_request(request)
        if traced_request is not None:
            traced_request.route = _route(match)
    return match


def _uncaught(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    with guard("django"):
        request = args[0] if args else kwargs.get("request")
        exc_info = args[2] if len(args) > 2 else kwargs.get("exc_info")
        traced_request = _traced_request(request)
        if traced_request is not None and exc_info and isinstance(exc_info[1], BaseException):
            traced_request.failed(exc_info[1])
    return wrapped(*args, **kwargs)


patches = Patches(
    "django",
    {
        "django.core.handlers.wsgi": [("WSGIHandler.__call__", _call)],
        "django.core.handlers.base": [("BaseHandler.resolve_request", _resolve)],
        "django.core.handlers.exception": [("handle_uncaught_exception", _uncaught)],
    },
)
patch = patches.apply
unpatch = patches.revert
