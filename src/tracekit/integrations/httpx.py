"""httpx: a CLIENT span for each request ``Client`` / ``AsyncClient`` sends, whatever the transport.

``_send_single_request`` is wrapped (each redirect passes through it again, so each gets
its own span with ``http.request.resend_count``) and ``send`` numbers them. The span ends
when the transport returns the response, before its body is read.
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
    argument,
    async_resend_scope,
    async_send,
    default_port,
    protocol_version,
    sync_resend_scope,
    sync_send,
)
from tracekit._patch import Patches, Plain

__all__ = ["patch", "patches", "unpatch"]


def _request(args: Args, kwargs: Kwargs) -> Any:
    return argument(args, kwargs, 0, "request")


def _describe(client: Any, args: Args, kwargs: Kwargs) -> RequestInfo:
    request = _request(args, kwargs)
    url = request.url
    return request.method, str(url), url.host, url.port or default_port(url.scheme)


def _inject(client: Any, args: Args, kwargs: Kwargs, carrier: dict[str, str]) -> tuple[Args, Kwargs]:
    # request.headers is this Request's own copy, built by httpx from the caller's mapping.
    add_headers(_request(args, kwargs).headers, carrier)
    return args, kwargs


def _response(response: Any) -> ResponseInfo:
    return response.status_code, protocol_version(response.http_version)


CLIENT = HttpClient(
    "httpx",
    describe=_describe,
    inject=_inject,
    response_info=_response,
    request_headers=lambda client, args, kwargs: _request(args, kwargs).headers.multi_items(),
    response_headers=lambda response: response.headers.multi_items(),
)

patches = Patches(
    "httpx",
    {
        "httpx": [
            ("Client.send", Plain(sync_resend_scope)),
            ("Client._send_single_request", Plain(sync_send(CLIENT))),
            ("AsyncClient.send", async_resend_scope),
            ("AsyncClient._send_single_request", async_send(CLIENT)),
        ]
    },
)
patch = patches.apply
unpatch = patches.revert
