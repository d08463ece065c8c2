"""urllib3: a CLIENT span for each request a connection pool sends (``PoolManager`` included).

``HTTPConnectionPool._make_request`` runs once per attempt, so retries and redirects
performed by urllib3 are spans of their own with ``http.request.resend_count``, numbered
within the outermost ``urlopen``. The span ends when the response is returned: before
the body is read with ``preload_content=False``; with the default
``preload_content=True`` urllib3 reads the body while building the response, inside it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tracekit._http import (
    Args,
    HttpClient,
    Kwargs,
    RequestInfo,
    ResponseInfo,
    add_headers,
    default_port,
    protocol_version,
    sync_resend_scope,
    sync_send,
)
from tracekit._patch import Patches, Plain

__all__ = ["patch", "patches", "unpatch"]

# _make_request(self, conn, method, url, body=None, headers=None, ...)
_METHOD, _URL, _HEADERS = 1, 2, 4


def _argument(args: Args, kwargs: Kwargs, index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def _describe(pool: Any, args: Args, kwargs: Kwargs) -> RequestInfo:
    method = _argument(args, kwargs, _METHOD, "method")
    target = _argument(args, kwargs, _URL, "url")
    scheme = pool.scheme
    host = pool.host.strip("[]")
    port = pool.port or default_port(scheme)
    if "://" in target:  # absolute form, sent to a proxy
        return method, target, host, port
    netloc = f"[{host}]" if ":" in host else host
    if port != default_port(scheme):
        netloc = f"{netloc}:{port}"
    return method, f"{scheme}://{netloc}{target}", host, port


def _inject(pool: Any, args: Args, kwargs: Kwargs, carrier: dict[str, str]) -> tuple[Args, Kwargs]:
    headers = _argument(args, kwargs, _HEADERS, "headers")
    merged = headers.copy() if headers is not None else {}
    add_headers(merged, carrier)
    if len(args) > _HEADERS:
        return (*args[:_HEADERS], merged, *args[_HEADERS + 1 :]), kwargs
    return args, {**kwargs, "headers": merged}


def _request_headers(pool: Any, args: Args, kwargs: Kwargs) -> Iterable[tuple[str, str]]:
    headers = _argument(args, kwargs, _HEADERS, "headers")
    return headers.items() if headers is not None else ()


def _response(response: Any) -> ResponseInfo:
    return response.status, protocol_version(response.version)


CLIENT = HttpClient(
    "urllib3",
    describe=_describe,
    inject=_inject,
    response_info=_response,
    request_headers=_request_headers,
    response_headers=lambda response: response.headers.items(),
)

patches = Patches(
    "urllib3",
    {
        "urllib3": [
            ("PoolManager.urlopen", Plain(sync_resend_scope)),
            ("HTTPConnectionPool.urlopen", Plain(sync_resend_scope)),
            ("HTTPConnectionPool._make_request", Plain(sync_send(CLIENT))),
        ]
    },
)
patch = patches.apply
unpatch = patches.revert
