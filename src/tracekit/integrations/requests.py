"""requests: a CLIENT span for each request a ``Session`` sends through an ``HTTPAdapter``.

``HTTPAdapter.send`` runs once per request on the wire (redirects followed by the session
pass through it again and get ``http.request.resend_count``); ``Session.send`` numbers
them. urllib3 underneath makes no second span. The span ends when the adapter returns
the response, before its body is read (``stream=False`` reads it afterwards).
"""

from __future__ import annotations

from typing import Any

from tracekit._http import (
    Args,
    HttpClient,
    Kwargs,
    RequestInfo,
    ResponseInfo,
    add_headers,
    protocol_version,
    split_origin,
    sync_resend_scope,
    sync_send,
)
from tracekit._patch import Patches, Plain

__all__ = ["patch", "patches", "unpatch"]


def _request(args: Args, kwargs: Kwargs) -> Any:
    """The PreparedRequest of ``HTTPAdapter.send(request, ...)``."""
    return args[0] if args else kwargs["request"]


def _describe(adapter: Any, args: Args, kwargs: Kwargs) -> RequestInfo:
    request = _request(args, kwargs)
    url = request.url
    _, host, port = split_origin(url)
    return request.method, url, host, port


def _inject(adapter: Any, args: Args, kwargs: Kwargs, carrier: dict[str, str]) -> tuple[Args, Kwargs]:
    # The PreparedRequest's headers are requests' own copy of the caller's mapping.
    add_headers(_request(args, kwargs).headers, carrier)
    return args, kwargs


def _response(response: Any) -> ResponseInfo:
    return response.status_code, protocol_version(getattr(response.raw, "version", None))


CLIENT = HttpClient(
    "requests",
    describe=_describe,
    inject=_inject,
    response_info=_response,
    request_headers=lambda adapter, args, kwargs: _request(args, kwargs).headers.items(),
    response_headers=lambda response: response.headers.items(),
)

patches = Patches(
    "requests",
    {
        "requests": [
            ("Session.send", Plain(sync_resend_scope)),
            ("adapters.HTTPAdapter.send", Plain(sync_send(CLIENT))),
        ]
    },
)
patch = patches.apply
unpatch = patches.revert
