"""uvicorn: a SERVER span per request of any ASGI application uvicorn serves.

``Config.load`` is wrapped: the application it loads (after uvicorn's own middleware) is
served through :func:`tracekit.integrations.asgi.traced`, outermost, so raw ASGI
applications are traced as well as frameworks. An application loaded while the
integration was on passes requests straight through once it is switched off.
"""

from __future__ import annotations

from typing import Any

from tracekit import _state
from tracekit._patch import Patches
from tracekit._safety import guard
from tracekit.integrations.asgi import ASGIApp, Receive, Scope, Send, app_kind, traced

__all__ = ["patch", "patches", "unpatch"]


class _Served:
    """The application uvicorn loaded, traced while the uvicorn integration is on."""

    __slots__ = ("app", "kind")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.kind = app_kind(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if "uvicorn" not in _state.wanted_integrations:
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


patches = Patches("uvicorn", {"uvicorn.config": [("Config.load", _load)]})
patch = patches.apply
unpatch = patches.revert
