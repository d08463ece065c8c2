"""uvicorn: a SERVER span per request of any ASGI application uvicorn serves.

``Config.load`` is wrapped: the application it loads (after uvicorn's own middleware) is
served through :func:`tracekit.integrations.asgi.traced`, outermost, so raw ASGI
applications are traced as well as frameworks. An application loaded while the
integration was on passes requests straight through once it is switched off.

``Server.shutdown`` is wrapped too: once uvicorn has shut down gracefully after a SIGTERM
or SIGINT, it restores the handler it found and raises the signal again, which ends the
process without exit handlers (under gunicorn's ``UvicornWorker``, with the default
disposition). What the server queued is flushed as its shutdown ends.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from tracekit import _state
from tracekit._compat import instrumented_by_contrib
from tracekit._exit import flush_before_the_end
from tracekit._patch import Patches
from tracekit._safety import guard
from tracekit.integrations.asgi import ASGIApp, Receive, Scope, Send, framework_app, traced

__all__ = ["patch", "patches", "unpatch"]


class _Served:
    """The application uvicorn loaded, traced while the uvicorn integration is on."""

    __slots__ = ("app", "framework", "kind")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.framework, self.kind = framework_app(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if "uvicorn" not in _state.wanted_integrations or instrumented_by_contrib(self.framework):
            await self.app(scope, receive, send)
            return
        await traced("uvicorn", self.kind, self.app, scope, receive, send)


def _load(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = wrapped(*args, **kwargs)
    with guard("uvicorn"):
        app = instance.loaded_app
        if not isinstance(app, _Served):
            instance.loaded_app = _Served(app)
    return result


def _shutdown(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return _then_flush(wrapped(*args, **kwargs), instance)


async def _then_flush(shutdown: Awaitable[Any], server: Any) -> Any:
    try:
        return await shutdown
    finally:
        # Only when a signal is about to be raised again (uvicorn >= 0.29 keeps them there).
        if getattr(server, "_captured_signals", None):
            with guard("uvicorn"):
                flush_before_the_end()


patches = Patches(
    "uvicorn",
    {"uvicorn.config": [("Config.load", _load)], "uvicorn.server": [("Server.shutdown", _shutdown)]},
)
patch = patches.apply
unpatch = patches.revert
