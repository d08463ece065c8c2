"""Semantic-convention attribute names tracekit emits, in one place.

Stable names first; the ``OLD_*`` names are emitted only under the matching ``*/dup``
value of ``OTEL_SEMCONV_STABILITY_OPT_IN``.
"""

from __future__ import annotations

__all__ = [
    "ERROR_TYPE",
    "EXCEPTION_MESSAGE",
    "EXCEPTION_STACKTRACE",
    "EXCEPTION_TYPE",
    "HTTP_REQUEST_HEADER",
    "HTTP_REQUEST_METHOD",
    "HTTP_REQUEST_METHOD_ORIGINAL",
    "HTTP_REQUEST_RESEND_COUNT",
    "HTTP_RESPONSE_HEADER",
    "HTTP_RESPONSE_STATUS_CODE",
    "KNOWN_HTTP_METHODS",
    "NETWORK_PROTOCOL_VERSION",
    "OLD_HTTP_FLAVOR",
    "OLD_HTTP_METHOD",
    "OLD_HTTP_STATUS_CODE",
    "OLD_HTTP_URL",
    "OLD_NET_PEER_NAME",
    "OLD_NET_PEER_PORT",
    "SERVER_ADDRESS",
    "SERVER_PORT",
    "URL_FULL",
    "qualified_name",
]

ERROR_TYPE = "error.type"
EXCEPTION_TYPE = "exception.type"
EXCEPTION_MESSAGE = "exception.message"
EXCEPTION_STACKTRACE = "exception.stacktrace"

HTTP_REQUEST_METHOD = "http.request.method"
HTTP_REQUEST_METHOD_ORIGINAL = "http.request.method_original"
HTTP_REQUEST_RESEND_COUNT = "http.request.resend_count"
HTTP_REQUEST_HEADER = "http.request.header."
HTTP_RESPONSE_HEADER = "http.response.header."
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"
NETWORK_PROTOCOL_VERSION = "network.protocol.version"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
URL_FULL = "url.full"

# The HTTP names before the stable conventions (OTEL_SEMCONV_STABILITY_OPT_IN=http/dup).
OLD_HTTP_METHOD = "http.method"
OLD_HTTP_URL = "http.url"
OLD_HTTP_STATUS_CODE = "http.status_code"
OLD_HTTP_FLAVOR = "http.flavor"
OLD_NET_PEER_NAME = "net.peer.name"
OLD_NET_PEER_PORT = "net.peer.port"

#: The methods of RFC 9110 and RFC 5789; any other is recorded as ``_OTHER``.
KNOWN_HTTP_METHODS = frozenset(
    ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")
)


def qualified_name(cls: type) -> str:
    """``module.QualName`` of a class (``QualName`` for builtins), as in ``exception.type``."""
    module = cls.__module__
    if not module or module == "builtins":
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"
