"""urllib.request: a CLIENT span for each request an ``http:`` / ``https:`` handler sends.

``AbstractHTTPHandler.do_open`` runs once per request on the wire; redirects followed by
the opener pass through it again (numbered within ``OpenerDirector.open``). The caller's
``Request`` is not modified: the headers are added to a copy. The span ends when the
response headers are in, before the body is read; an HTTP error status is recorded on
the span before urllib turns it into ``HTTPError``.
"""

from __future__ import annotations

import copy
from typing import Any

from tracekit._http import (
    Args,
    HttpClient,
    Kwargs,
    RequestInfo,
    ResponseInfo,
    argument,
    protocol_version,
    split_origin,
    sync_resend_scope,
    sync_send,
)
from tracekit._patch import Patches, Plain

__all__ = ["patch", "patches", "unpatch"]


# do_open(self, http_class, req, **http_conn_args)
def _request(args: Args, kwargs: Kwargs) -> Any:
    return argument(args, kwargs, 1, "req")


def _describe(handler: Any, args: Args, kwargs: Kwargs) -> RequestInfo:
    request = _request(args, kwargs)
    url = request.full_url
    _, host, port = split_origin(url)
    return request.get_method(), url, host, port


def _inject(handler: Any, args: Args, kwargs: Kwargs, carrier: dict[str, str]) -> tuple[Args, Kwargs]:
    request = copy.copy(_request(args, kwargs))
    request.headers = {**request.headers, **{name.capitalize(): value for name, value in carrier.items()}}
    if len(args) > 1:
        return (args[0], request, *args[2:]), kwargs
    return args, {**kwargs, "req": request}


def _response(response: Any) -> ResponseInfo:
    return response.status, protocol_version(response.version)


CLIENT = HttpClient(
    "urllib",
    describe=_describe,
    inject=_inject,
    response_info=_response,
    request_headers=lambda handler, args, kwargs: _request(args, kwargs).header_items(),
    response_headers=lambda response: response.headers.items(),
)

patches = Patches(
    "urllib",
    {
        "urllib.request": [
            ("OpenerDirector.open", Plain(sync_resend_scope)),
            ("AbstractHTTPHandler.do_open", Plain(sync_send(CLIENT))),
        ]
    },
)
patch = patches.apply
unpatch = patches.revert
