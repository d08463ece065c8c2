"""Flask: a SERVER span per request of every ``Flask`` application, named from its URL rule.

``Flask.__call__`` makes the span (outside the application's own WSGI middleware);
``RequestContext.match_request``, Flask's routing of the request, gives the matched
``url_rule`` (``/items/<int:item_id>``, Flask's own template format); and
``Flask.handle_exception``, which Flask calls for an exception no handler took (before it
answers 500), records that exception on the span.
"""

from __future__ import annotations

import sys
from typing import Any

from tracekit._compat import instrumented_by_contrib
from tracekit._http_server import KEY
from tracekit._patch import Patches
from tracekit._safety import guard
from tracekit.integrations.wsgi import traced

__all__ = ["patch", "patches", "unpatch"]


def _call(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if kwargs or len(args) != 2 or instrumented_by_contrib(instance):
        return wrapped(*args, **kwargs)
    return traced("flask", "flask", wrapped, *args)


def _matched(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = wrapped(*args, **kwargs)
    with guard("flask"):
        request = instance.request
        traced_request = request.environ.get(KEY)
        if traced_request is not None:
            rule = request.url_rule
            if rule is not None:
                traced_request.route = rule.rule
    return result


def _exception(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    with guard("flask"):
        traced_request = sys.modules["flask"].request.environ.get(KEY)
        error = args[0] if args else kwargs.get("e")
        if traced_request is not None and isinstance(error, BaseException):
            traced_request.failed(error)
    return wrapped(*args, **kwargs)


patches = Patches(
    "flask",
    {
        "flask": [
            ("Flask.__call__", _call),
            ("ctx.RequestContext.match_request", _matched),
            ("Flask.handle_exception", _exception),
        ]
    },
)
patch = patches.apply
unpatch = patches.revert
