"""requests: a CLIENT span for each request a ``Session`` sends through a transport adapter.

``HTTPAdapter.send`` runs once per request on the wire (redirects followed by the session
pass through it again and get ``http.request.resend_count``); ``Session.send`` numbers
them. urllib3 underneath makes no second span. The span ends when the adapter returns
the response, before its body is read (``stream=False`` reads it afterwards).

An adapter of its own class (a custom transport, a test adapter) that overrides ``send``
is traced the same way from the moment it is mounted on a session: ``Session.mount`` wraps
that class's ``send`` once. One that calls ``super().send()`` still makes one span.
"""

from __future__ import annotations

import sys
from types import FunctionType
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
from tracekit._patch import Patches, Plain, is_patch
from tracekit._safety import guard

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


def _mount(wrapped: Any, session: Any, args: Args, kwargs: Kwargs) -> Any:
    result = wrapped(*args, **kwargs)
    with guard("requests"):
        adapter = args[1] if len(args) > 1 else kwargs.get("adapter")
        _trace_own_sends(type(adapter))
    return result


def _trace_own_sends(adapter_class: type) -> None:
    """Wrap ``send`` on every class of ``adapter_class``'s MRO that defines its own."""
    import requests.adapters

    bases = (requests.adapters.HTTPAdapter, requests.adapters.BaseAdapter, object)
    for owner in adapter_class.__mro__:
        if owner in bases:
            continue
        send = vars(owner).get("send")
        if isinstance(send, FunctionType) and not is_patch(send):
            patches.extend(sys.modules["requests"], owner, "send", _SEND)


CLIENT = HttpClient(
    "requests",
    describe=_describe,
    inject=_inject,
    response_info=_response,
    request_headers=lambda adapter, args, kwargs: _request(args, kwargs).headers.items(),
    response_headers=lambda response: response.headers.items(),
)

_SEND = Plain(sync_send(CLIENT))

patches = Patches(
    "requests",
    {
        "requests": [
            ("Session.send", Plain(sync_resend_scope)),
            ("Session.mount", Plain(_mount)),
            ("adapters.HTTPAdapter.send", _SEND),
        ]
    },
)
patch = patches.apply
unpatch = patches.revert
