"""Span attributes and errors every Kafka span records: operation, client, message.

One place for the semantic conventions' names, and for the old names written as well under
``OTEL_SEMCONV_STABILITY_OPT_IN=messaging/dup``.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from tracekit._messaging._common import BYTES, Attributes, Client
from tracekit._semconv import (
    ERROR_TYPE,
    MESSAGING_CLIENT_ID,
    MESSAGING_CONSUMER_GROUP_NAME,
    MESSAGING_DESTINATION_PARTITION_ID,
    MESSAGING_KAFKA_MESSAGE_KEY,
    MESSAGING_KAFKA_MESSAGE_TOMBSTONE,
    MESSAGING_KAFKA_OFFSET,
    MESSAGING_MESSAGE_BODY_SIZE,
    MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE,
    MESSAGING_SYSTEM,
    OLD_MESSAGING_CLIENT_ID,
    OLD_MESSAGING_KAFKA_CONSUMER_GROUP,
    OLD_MESSAGING_KAFKA_DESTINATION_PARTITION,
    OLD_MESSAGING_KAFKA_MESSAGE_OFFSET,
    OLD_MESSAGING_OPERATION,
    SERVER_ADDRESS,
    SERVER_PORT,
)
from tracekit._spans import record_exception

__all__ = ["client_attributes", "message_attributes", "operation_attributes", "record_error"]


def record_error(span: trace.Span, error_type: str, exc: BaseException | None, message: str = "") -> None:
    if exc is not None:
        record_exception(span, exc, error_type)
    elif span.is_recording():
        span.set_attribute(ERROR_TYPE, error_type)
        span.set_status(Status(StatusCode.ERROR, message or error_type))


def client_attributes(attributes: Attributes, client: Client, dup: bool) -> None:
    if client.client_id is not None:
        attributes[MESSAGING_CLIENT_ID] = client.client_id
        if dup:
            attributes[OLD_MESSAGING_CLIENT_ID] = client.client_id
    if client.group is not None:
        attributes[MESSAGING_CONSUMER_GROUP_NAME] = client.group
        if dup:
            attributes[OLD_MESSAGING_KAFKA_CONSUMER_GROUP] = client.group
    if client.address is not None:
        attributes[SERVER_ADDRESS] = client.address
        if client.port is not None:
            attributes[SERVER_PORT] = client.port


def _key_text(key: Any) -> str | None:
    """The key's string form: a str, or bytes that are printable UTF-8 text; else none."""
    if isinstance(key, str):
        return key
    if isinstance(key, BYTES):
        try:
            text = bytes(key).decode("utf-8")
        except UnicodeDecodeError:
            return None
        return text if text.isprintable() else None
    return None


def message_attributes(
    attributes: Attributes, partition: Any, offset: Any, key: Any, value: Any, size: Any, dup: bool
) -> None:
    if isinstance(partition, int) and partition >= 0:
        attributes[MESSAGING_DESTINATION_PARTITION_ID] = str(partition)
        if dup:
            attributes[OLD_MESSAGING_KAFKA_DESTINATION_PARTITION] = partition
    if isinstance(offset, int) and offset >= 0:
        attributes[MESSAGING_KAFKA_OFFSET] = offset
        if dup:
            attributes[OLD_MESSAGING_KAFKA_MESSAGE_OFFSET] = offset
    text = _key_text(key)
    if text is not None:
        attributes[MESSAGING_KAFKA_MESSAGE_KEY] = text
    if value is None:
        attributes[MESSAGING_KAFKA_MESSAGE_TOMBSTONE] = True
    if not (isinstance(size, int) and size >= 0) and isinstance(value, BYTES):
        size = len(value)
    if isinstance(size, int) and size >= 0:
        attributes[MESSAGING_MESSAGE_BODY_SIZE] = size


def operation_attributes(attributes: Attributes, kind: str, name: str, old: str, dup: bool) -> None:
    attributes[MESSAGING_SYSTEM] = "kafka"
    attributes[MESSAGING_OPERATION_TYPE] = kind
    attributes[MESSAGING_OPERATION_NAME] = name
    if dup:
        attributes[OLD_MESSAGING_OPERATION] = old
