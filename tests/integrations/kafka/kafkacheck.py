"""Kafka-protocol brokers for the tests (see tracekit._kafka_broker), topics and span checks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from tracekit._kafka_broker import BROKERS, Broker, BrokerUnavailable, running_broker, unresponsive

__all__ = [
    "BROKERS",
    "SESSION_TIMEOUT_MS",
    "WAIT_SECONDS",
    "Broker",
    "BrokerUnavailable",
    "by_name",
    "check_error",
    "check_poll",
    "check_process",
    "check_send",
    "create_topic",
    "header_values",
    "ids",
    "running_broker",
    "suppressed",
    "traceparent",
    "unresponsive",
]

#: Consumer-group session timeout for every test consumer: joins stay quick.
SESSION_TIMEOUT_MS = 6000
#: How long a test waits for records before failing.
WAIT_SECONDS = 20.0


@contextmanager
def suppressed() -> Iterator[None]:
    """OpenTelemetry's suppress-instrumentation key is set inside the block (as exporters do)."""
    from tracekit._suppression import _SUPPRESS

    token = otel_context.attach(otel_context.set_value(_SUPPRESS, True))
    try:
        yield
    finally:
        otel_context.detach(token)


def create_topic(broker: Broker, topic: str, partitions: int = 1) -> None:
    """Create ``topic`` with kafka-python's admin client (every test topic is fresh)."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()


# --------------------------------------------------------------------------- span checks


def ids(span: ReadableSpan) -> tuple[int, int]:
    assert span.context is not None
    return span.context.trace_id, span.context.span_id


#: The tracestate of a trace sampled by the default sampler at ratio 1.0 (threshold 0).
ROOT_TRACESTATE = b"ot=th:0"


def traceparent(span: ReadableSpan) -> bytes:
    trace_id, span_id = ids(span)
    assert span.context is not None
    return f"00-{trace_id:032x}-{span_id:016x}-{int(span.context.trace_flags):02x}".encode()


def header_values(headers: Any, name: str) -> list[bytes]:
    pairs = headers.items() if isinstance(headers, dict) else (headers or ())
    return [value for key, value in pairs if key == name]


def check_send(
    span: ReadableSpan,
    broker: Broker,
    topic: str,
    *,
    client_id: str | None,
    partition: int | None = 0,
    offset: int | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """A successful ``send {topic}`` span: name, kind, status and every attribute, exactly."""
    assert span.name == f"send {topic}"
    assert span.kind is SpanKind.PRODUCER
    assert span.status.status_code is StatusCode.UNSET
    expected: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": topic,
        "server.address": broker.host,
        "server.port": broker.port,
    }
    if client_id is not None:
        expected["messaging.client.id"] = client_id
    if partition is not None:
        expected["messaging.destination.partition.id"] = str(partition)
    if offset is not None:
        expected["messaging.kafka.offset"] = offset
    expected.update(extra or {})
    assert dict(span.attributes or {}) == expected


def check_process(
    span: ReadableSpan,
    broker: Broker,
    topic: str,
    sender: ReadableSpan | None,
    *,
    client_id: str | None,
    group: str | None,
    offset: int,
    extra: dict[str, Any] | None = None,
    ambient: ReadableSpan | None = None,
) -> None:
    """A ``process {topic}`` span: child of ``sender`` (same trace), links, attributes, exactly."""
    assert span.name == f"process {topic}"
    assert span.kind is SpanKind.CONSUMER
    if sender is not None:
        assert span.parent is not None
        assert (span.parent.trace_id, span.parent.span_id) == ids(sender)
        assert span.context is not None
        assert span.context.trace_id == ids(sender)[0]
        expected_links = [ids(sender)] + ([ids(ambient)] if ambient is not None else [])
        assert [(link.context.trace_id, link.context.span_id) for link in span.links] == expected_links
    expected: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": topic,
        "messaging.destination.partition.id": "0",
        "messaging.kafka.offset": offset,
        "server.address": broker.host,
        "server.port": broker.port,
    }
    if client_id is not None:
        expected["messaging.client.id"] = client_id
    if group is not None:
        expected["messaging.consumer.group.name"] = group
    expected.update(extra or {})
    assert dict(span.attributes or {}) == expected


def check_poll(
    span: ReadableSpan,
    broker: Broker,
    topic: str,
    senders: Sequence[ReadableSpan],
    *,
    count: int,
    client_id: str | None,
    group: str | None,
    first_offset: int = 0,
) -> None:
    """A batch ``poll {topic}`` span: CLIENT, one link per sent record, attributes exactly."""
    assert span.name == f"poll {topic}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert [(link.context.trace_id, link.context.span_id) for link in span.links] == [ids(s) for s in senders]
    assert [dict(link.attributes or {}) for link in span.links] == [
        {
            "messaging.destination.name": topic,
            "messaging.destination.partition.id": "0",
            "messaging.kafka.offset": first_offset + number,
        }
        for number in range(len(senders))
    ]
    expected: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "receive",
        "messaging.operation.name": "poll",
        "messaging.destination.name": topic,
        "messaging.destination.partition.id": "0",
        "messaging.batch.message_count": count,
        "server.address": broker.host,
        "server.port": broker.port,
    }
    if client_id is not None:
        expected["messaging.client.id"] = client_id
    if group is not None:
        expected["messaging.consumer.group.name"] = group
    assert dict(span.attributes or {}) == expected


def check_error(span: ReadableSpan, error_type: str) -> None:
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {}).get("error.type") == error_type


def by_name(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]
