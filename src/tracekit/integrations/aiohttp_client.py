"""aiohttp: a CLIENT span for each request a ``ClientSession`` sends.

``ClientSession._request`` is wrapped to append one client middleware, innermost, to
the session's (or the call's) middlewares. aiohttp runs the middleware chain once per
request on the wire, so each redirect and each reconnection attempt is its own span with
``http.request.resend_count``. The span ends when the response headers are in, before
the body is read.
"""

from __future__ import annotations

from typing import Any

from tracekit import _state
from tracekit._http import (
    Args,
    HttpClient,
    Kwargs,
    RequestInfo,
    ResponseInfo,
    add_headers,
    async_resend_scope,
    async_send,
    protocol_version,
)
from tracekit._patch import Patches

__all__ = ["patch", "patches", "unpatch"]


def _describe(handler: Any, args: Args, kwargs: Kwargs) -> RequestInfo:
    request = args[0]
    url = request.url
    return request.method, str(url), url.host or "", url.port


def _inject(handler: Any, args: Args, kwargs: Kwargs, carrier: dict[str, str]) -> tuple[Args, Kwargs]:
    # ClientRequest.headers is the request's own CIMultiDict, merged from the caller's mapping.
    add_headers(args[0].headers, carrier)
    return args, kwargs


def _response(response: Any) -> ResponseInfo:
    return response.status, protocol_version(tuple(response.version))


CLIENT = HttpClient(
    "aiohttp_client",
    describe=_describe,
    inject=_inject,
    response_info=_response,
    request_headers=lambda handler, args, kwargs: args[0].headers.items(),
    response_headers=lambda response: response.headers.items(),
)

_send = async_send(CLIENT)


async def middleware(request: Any, handler: Any) -> Any:
    """The client middleware that makes the span: ``handler`` is what sends the request."""
    return await _send(handler, None, (request,), {})


def _with_middleware(wrapped: Any, session: Any, args: Args, kwargs: Kwargs) -> Any:
    if _state.current is None:
        return wrapped(*args, **kwargs)
    given = kwargs.get("middlewares")
    chain = session._middlewares if given is None else given
    kwargs = {**kwargs, "middlewares": (*chain, middleware)}
    return async_resend_scope(wrapped, session, args, kwargs)


patches = Patches("aiohttp_client", {"aiohttp": [("ClientSession._request", _with_middleware)]})
patch = patches.apply
unpatch = patches.revert
