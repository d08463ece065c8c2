"""What a collector says back, read from protobuf bytes without the generated messages.

Three messages matter to an exporter: ``ExportTraceServiceResponse`` (its
``partial_success``: how many spans were rejected and why), ``google.rpc.Status`` (the
message of a failed OTLP/HTTP request, and the rich status of a failed gRPC call) and the
``google.rpc.RetryInfo`` a throttling collector puts in that status. Reading them takes a
dozen lines of wire-format parsing, far less than importing the protobuf runtime for it.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["partial_success", "rpc_status"]

_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """``(field number, value)`` of each field: varints as ints, length-delimited as bytes."""
    position, end = 0, len(data)
    while position < end:
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, position = _varint(data, position)
            yield number, value
        elif wire_type == 2:
            length, position = _varint(data, position)
            if position + length > end:
                raise ValueError("truncated field")
            yield number, data[position : position + length]
            position += length
        elif wire_type == 1:
            position += 8
        elif wire_type == 5:
            position += 4
        else:
            raise ValueError(f"unsupported wire type {wire_type}")


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def _text(value: int | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else ""


def partial_success(body: bytes) -> tuple[int, str]:
    """``(rejected_spans, error_message)`` of an ``ExportTraceServiceResponse``; ``(0, "")`` if unreadable."""
    rejected, message = 0, ""
    try:
        for number, value in _fields(body):
            if number == 1 and isinstance(value, bytes):
                for inner, item in _fields(value):
                    if inner == 1 and isinstance(item, int):
                        rejected = item if item < 1 << 63 else 0
                    elif inner == 2:
                        message = _text(item)
    except ValueError:
        return 0, ""
    return rejected, message


def rpc_status(body: bytes) -> tuple[str, float | None]:
    """``(message, retry delay in seconds)`` of a ``google.rpc.Status``; ``("", None)`` if unreadable."""
    message, delay = "", None
    try:
        for number, value in _fields(body):
            if number == 2:
                message = _text(value)
            elif number == 3 and isinstance(value, bytes):
                delay = _retry_delay(value) if delay is None else delay
    except ValueError:
        return "", None
    return message, delay


def _retry_delay(any_message: bytes) -> float | None:
    """The delay of a ``RetryInfo`` packed in an ``Any``, else ``None``."""
    type_url, packed = "", b""
    for number, value in _fields(any_message):
        if number == 1:
            type_url = _text(value)
        elif number == 2 and isinstance(value, bytes):
            packed = value
    if type_url != _RETRY_INFO:
        return None
    seconds = nanos = 0
    for number, value in _fields(packed):
        if number == 1 and isinstance(value, bytes):  # retry_delay: google.protobuf.Duration
            for inner, item in _fields(value):
                if inner == 1 and isinstance(item, int):
                    seconds = item
                elif inner == 2 and isinstance(item, int):
                    nanos = item
    return max(0.0, seconds + nanos / 1e9)
