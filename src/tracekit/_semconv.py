"""Semantic-convention attribute names tracekit emits, in one place.

Stable names first; the ``OLD_*`` names are emitted only under the matching ``*/dup``
value of ``OTEL_SEMCONV_STABILITY_OPT_IN``.
"""

from __future__ import annotations

import traceback

__all__ = [
    "CLIENT_ADDRESS",
    "DB_COLLECTION_NAME",
    "DB_NAMESPACE",
    "DB_OPERATION_BATCH_SIZE",
    "DB_OPERATION_NAME",
    "DB_OPERATION_PARAMETER",
    "DB_QUERY_SUMMARY",
    "DB_QUERY_TEXT",
    "DB_RESPONSE_STATUS_CODE",
    "DB_STORED_PROCEDURE_NAME",
    "DB_SYSTEM_NAME",
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
    "HTTP_ROUTE",
    "KNOWN_HTTP_METHODS",
    "MESSAGING_BATCH_MESSAGE_COUNT",
    "MESSAGING_CLIENT_ID",
    "MESSAGING_CONSUMER_GROUP_NAME",
    "MESSAGING_DESTINATION_NAME",
    "MESSAGING_DESTINATION_PARTITION_ID",
    "MESSAGING_KAFKA_MESSAGE_KEY",
    "MESSAGING_KAFKA_MESSAGE_TOMBSTONE",
    "MESSAGING_KAFKA_OFFSET",
    "MESSAGING_MESSAGE_BODY_SIZE",
    "MESSAGING_OPERATION_NAME",
    "MESSAGING_OPERATION_TYPE",
    "MESSAGING_SYSTEM",
    "NETWORK_PEER_ADDRESS",
    "NETWORK_PEER_PORT",
    "NETWORK_PROTOCOL_VERSION",
    "OLD_DB_NAME",
    "OLD_DB_OPERATION",
    "OLD_DB_SQL_TABLE",
    "OLD_DB_STATEMENT",
    "OLD_DB_SYSTEM",
    "OLD_HTTP_CLIENT_IP",
    "OLD_HTTP_FLAVOR",
    "OLD_HTTP_METHOD",
    "OLD_HTTP_SCHEME",
    "OLD_HTTP_STATUS_CODE",
    "OLD_HTTP_TARGET",
    "OLD_HTTP_URL",
    "OLD_HTTP_USER_AGENT",
    "OLD_MESSAGING_CLIENT_ID",
    "OLD_MESSAGING_KAFKA_CONSUMER_GROUP",
    "OLD_MESSAGING_KAFKA_DESTINATION_PARTITION",
    "OLD_MESSAGING_KAFKA_MESSAGE_OFFSET",
    "OLD_MESSAGING_OPERATION",
    "OLD_NET_HOST_NAME",
    "OLD_NET_HOST_PORT",
    "OLD_NET_PEER_IP",
    "OLD_NET_PEER_NAME",
    "OLD_NET_PEER_PORT",
    "SERVER_ADDRESS",
    "SERVER_PORT",
    "URL_FULL",
    "URL_PATH",
    "URL_QUERY",
    "URL_SCHEME",
    "USER_AGENT_ORIGINAL",
    "exception_event",
    "http_method",
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

# HTTP server spans.
HTTP_ROUTE = "http.route"
URL_PATH = "url.path"
URL_QUERY = "url.query"
URL_SCHEME = "url.scheme"
CLIENT_ADDRESS = "client.address"
NETWORK_PEER_ADDRESS = "network.peer.address"
NETWORK_PEER_PORT = "network.peer.port"
USER_AGENT_ORIGINAL = "user_agent.original"

# The HTTP names before the stable conventions (OTEL_SEMCONV_STABILITY_OPT_IN=http/dup).
OLD_HTTP_METHOD = "http.method"
OLD_HTTP_URL = "http.url"
OLD_HTTP_STATUS_CODE = "http.status_code"
OLD_HTTP_FLAVOR = "http.flavor"
OLD_NET_PEER_NAME = "net.peer.name"
OLD_NET_PEER_PORT = "net.peer.port"
OLD_HTTP_SCHEME = "http.scheme"
OLD_HTTP_TARGET = "http.target"
OLD_HTTP_USER_AGENT = "http.user_agent"
OLD_HTTP_CLIENT_IP = "http.client_ip"
OLD_NET_HOST_NAME = "net.host.name"
OLD_NET_HOST_PORT = "net.host.port"
OLD_NET_PEER_IP = "net.peer.ip"

MESSAGING_SYSTEM = "messaging.system"
MESSAGING_OPERATION_TYPE = "messaging.operation.type"
MESSAGING_OPERATION_NAME = "messaging.operation.name"
MESSAGING_DESTINATION_NAME = "messaging.destination.name"
MESSAGING_DESTINATION_PARTITION_ID = "messaging.destination.partition.id"
MESSAGING_CONSUMER_GROUP_NAME = "messaging.consumer.group.name"
MESSAGING_CLIENT_ID = "messaging.client.id"
MESSAGING_MESSAGE_BODY_SIZE = "messaging.message.body.size"
MESSAGING_BATCH_MESSAGE_COUNT = "messaging.batch.message_count"
MESSAGING_KAFKA_OFFSET = "messaging.kafka.offset"
MESSAGING_KAFKA_MESSAGE_KEY = "messaging.kafka.message.key"
MESSAGING_KAFKA_MESSAGE_TOMBSTONE = "messaging.kafka.message.tombstone"

# The messaging names before the current conventions (OTEL_SEMCONV_STABILITY_OPT_IN=messaging/dup).
OLD_MESSAGING_OPERATION = "messaging.operation"
OLD_MESSAGING_CLIENT_ID = "messaging.client_id"
OLD_MESSAGING_KAFKA_CONSUMER_GROUP = "messaging.kafka.consumer.group"
OLD_MESSAGING_KAFKA_MESSAGE_OFFSET = "messaging.kafka.message.offset"
OLD_MESSAGING_KAFKA_DESTINATION_PARTITION = "messaging.kafka.destination.partition"

DB_COLLECTION_NAME = "db.collection.name"
DB_NAMESPACE = "db.namespace"
DB_OPERATION_BATCH_SIZE = "db.operation.batch.size"
DB_OPERATION_NAME = "db.operation.name"
DB_OPERATION_PARAMETER = "db.operation.parameter."
DB_QUERY_SUMMARY = "db.query.summary"
DB_QUERY_TEXT = "db.query.text"
DB_RESPONSE_STATUS_CODE = "db.response.status_code"
DB_STORED_PROCEDURE_NAME = "db.stored_procedure.name"
DB_SYSTEM_NAME = "db.system.name"

# The database names before the stable conventions (OTEL_SEMCONV_STABILITY_OPT_IN=database/dup).
OLD_DB_NAME = "db.name"
OLD_DB_OPERATION = "db.operation"
OLD_DB_SQL_TABLE = "db.sql.table"
OLD_DB_STATEMENT = "db.statement"
OLD_DB_SYSTEM = "db.system"

#: The methods of RFC 9110 and RFC 5789; any other is recorded as ``_OTHER``.
KNOWN_HTTP_METHODS = frozenset(
    ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")
)


def _http_method(method: str) -> tuple[str, str, str | None]:
    upper = method.upper()
    if upper in KNOWN_HTTP_METHODS:
        return upper, upper, (None if upper == method else method)
    return "HTTP", "_OTHER", method


_HTTP_METHODS = {
    method: _http_method(method) for known in KNOWN_HTTP_METHODS for method in (known, known.lower())
}


def http_method(method: str) -> tuple[str, str, str | None]:
    """``(span name prefix, http.request.method, http.request.method_original or None)``.

    Unknown methods are ``_OTHER`` in the attribute and ``HTTP`` in the span name.
    """
    found = _HTTP_METHODS.get(method)
    return found if found is not None else _http_method(method)


def qualified_name(cls: type) -> str:
    """``module.QualName`` of a class (``QualName`` for builtins), as in ``exception.type``."""
    module = cls.__module__
    if not module or module == "builtins":
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def exception_event(exc: BaseException) -> dict[str, str]:
    """The attributes of the ``exception`` span event recording ``exc``."""
    return {
        EXCEPTION_TYPE: qualified_name(type(exc)),
        EXCEPTION_MESSAGE: str(exc),
        EXCEPTION_STACKTRACE: "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }
