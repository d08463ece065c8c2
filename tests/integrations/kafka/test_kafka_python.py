"""kafka-python against real brokers: send spans, context in headers, process and poll spans."""

from __future__ import annotations

from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import RequestTimedOutError
from kafkacheck import (
    ROOT_TRACESTATE,
    SESSION_TIMEOUT_MS,
    WAIT_SECONDS,
    Broker,
    by_name,
    check_error,
    check_poll,
    check_process,
    check_send,
    header_values,
    ids,
    running_broker,
    suppressed,
    traceparent,
    unresponsive,
)
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

import tracekit.kafka
from tracekit import _state
from tracekit.testing import SpanRecorder

WAIT_MS = int(WAIT_SECONDS * 1000)


def producer(broker: Broker, **config: Any) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=broker.bootstrap, client_id="orders-api", **config)


def consumer(broker: Broker, topic: str | None, **config: Any) -> KafkaConsumer:
    """A consumer of partition 0 of ``topic`` from the start (a group member when ``group_id`` is given)."""
    settings: dict[str, Any] = {
        "bootstrap_servers": broker.bootstrap,
        "client_id": "worker",
        "auto_offset_reset": "earliest",
        "consumer_timeout_ms": WAIT_MS,
        "fetch_max_wait_ms": 100,
        "session_timeout_ms": SESSION_TIMEOUT_MS,
        "heartbeat_interval_ms": 1000,
        **config,
    }
    if settings.get("group_id") is None and topic is not None:
        made = KafkaConsumer(**settings)
        made.assign([TopicPartition(topic, 0)])
        return made
    return KafkaConsumer(*([topic] if topic else []), **settings)


def send(broker: Broker, topic: str, *records: tuple[Any, ...]) -> None:
    with_producer = producer(broker)
    for value, key, headers in records:
        with_producer.send(topic, value, key=key, headers=headers).get(timeout=WAIT_SECONDS)
    with_producer.close()


def test_one_trace_from_send_to_process_with_the_callers_headers_kept(
    broker: Broker, topic: str, spans: SpanRecorder
) -> None:
    headers = [("tenant", b"acme"), ("tenant", b"second")]
    sending = producer(broker)
    metadata = sending.send(topic, b"order-1", key=b"o-1", headers=headers).get(timeout=WAIT_SECONDS)
    sending.close()
    assert metadata.offset == 0
    assert headers == [("tenant", b"acme"), ("tenant", b"second")], "the caller's list was changed"

    receiving = consumer(broker, topic)
    inside: list[Any] = []
    for record in receiving:
        inside.append((record, trace.get_current_span().get_span_context()))
        with _state.tracer.start_as_current_span("reserve stock"):
            pass
        break
    receiving.close()

    sent = spans.named(f"send {topic}")
    check_send(
        sent,
        broker,
        topic,
        client_id="orders-api",
        offset=0,
        extra={"messaging.kafka.message.key": "o-1", "messaging.message.body.size": 7},
    )
    processed = spans.named(f"process {topic}")
    check_process(
        processed,
        broker,
        topic,
        sent,
        client_id="worker",
        group=None,
        offset=0,
        extra={"messaging.kafka.message.key": "o-1", "messaging.message.body.size": 7},
    )
    record, current = inside[0]
    assert record.headers == [
        ("tenant", b"acme"),
        ("tenant", b"second"),
        ("traceparent", traceparent(sent)),
        ("tracestate", ROOT_TRACESTATE),
    ]
    assert (current.trace_id, current.span_id) == ids(processed)
    child = spans.named("reserve stock")
    assert child.parent is not None
    assert child.parent.span_id == ids(processed)[1]
    assert trace.get_current_span() is trace.INVALID_SPAN, "the process span outlived close()"


def test_each_process_span_ends_when_the_next_record_is_asked_for(
    broker: Broker, topic: str, spans: SpanRecorder
) -> None:
    send(broker, topic, (b"a", None, None), (b"b", None, None))
    receiving = consumer(broker, topic)
    currents = []
    for record in receiving:
        currents.append(trace.get_current_span())
        if record.offset == 1:
            break
    (first,) = by_name(spans.spans, f"process {topic}")  # the second is still open
    assert first is not None
    assert first.end_time is not None
    receiving.close()
    first, second = by_name(spans.spans, f"process {topic}")
    assert first.end_time is not None
    assert second.start_time is not None
    assert first.end_time <= second.start_time
    assert [ids(first), ids(second)] == [
        (span.get_span_context().trace_id, span.get_span_context().span_id) for span in currents
    ]
    senders = by_name(spans.spans, f"send {topic}")
    assert [span.parent.span_id for span in (first, second) if span.parent] == [ids(s)[1] for s in senders]
    assert otel_context.get_current() == otel_context.Context()


def test_a_consumer_group_member_records_its_group(broker: Broker, topic: str, spans: SpanRecorder) -> None:
    send(broker, topic, (b"a", None, None))
    receiving = consumer(broker, topic, group_id="billing")
    record = next(iter(receiving))
    receiving.commit()
    receiving.close()
    assert record.offset == 0
    check_process(
        spans.named(f"process {topic}"),
        broker,
        topic,
        spans.named(f"send {topic}"),
        client_id="worker",
        group="billing",
        offset=0,
        extra={"messaging.message.body.size": 1},
    )


def test_poll_makes_one_span_linking_every_record_and_process_scopes_each(
    broker: Broker, topic: str, spans: SpanRecorder
) -> None:
    send(broker, topic, (b"a", b"k1", None), (b"b", b"k2", [("x", b"1")]))
    with suppressed():
        send(broker, topic, (b"untraced", None, None))
    senders = by_name(spans.spans, f"send {topic}")
    assert len(senders) == 2
    receiving = consumer(broker, topic)
    records: list[Any] = []
    while len(records) < 3:
        batch = receiving.poll(timeout_ms=WAIT_MS)
        assert batch, "no records within the time limit"
        records.extend(record for part in batch.values() for record in part)
    for record in records:
        with tracekit.kafka.process(record) as span:
            assert trace.get_current_span() is span
    receiving.close()

    polls = by_name(spans.spans, f"poll {topic}")
    assert sum(span.attributes["messaging.batch.message_count"] for span in polls) == 3  # type: ignore[index,misc]
    linked = [link for span in polls for link in span.links]
    assert [(link.context.trace_id, link.context.span_id) for link in linked] == [ids(s) for s in senders]
    if len(polls) == 1:
        check_poll(polls[0], broker, topic, senders, count=3, client_id="worker", group=None)
    processed = by_name(spans.spans, f"process {topic}")
    assert len(processed) == 3
    for span, sender, offset in zip(processed, [*senders, None], range(3), strict=False):
        extra = {"messaging.message.body.size": len(records[offset].value)}
        if offset < 2:
            extra["messaging.kafka.message.key"] = f"k{offset + 1}"
        check_process(span, broker, topic, sender, client_id="worker", group=None, offset=offset, extra=extra)
    assert processed[2].parent is None, "a record without context starts its own trace"


def test_a_record_sent_on_carries_one_traceparent_the_new_send_span(
    broker: Broker, new_topic: Any, spans: SpanRecorder
) -> None:
    first, second = new_topic(), new_topic()
    send(broker, first, (b"a", None, [("tenant", b"acme")]))
    receiving = consumer(broker, first)
    forwarding = producer(broker)
    for record in receiving:
        forwarding.send(second, record.value, headers=record.headers).get(timeout=WAIT_SECONDS)
        break
    receiving.close()
    forwarding.close()
    final = consumer(broker, second)
    forwarded = next(iter(final))
    final.close()

    original = spans.named(f"send {first}")
    resend = spans.named(f"send {second}")
    processed = spans.named(f"process {first}")
    assert header_values(forwarded.headers, "traceparent") == [traceparent(resend)]
    assert forwarded.headers[0] == ("tenant", b"acme")
    assert resend.parent is not None
    assert resend.parent.span_id == ids(processed)[1]
    assert [(link.context.trace_id, link.context.span_id) for link in resend.links] == [ids(original)]
    assert ids(resend)[0] == ids(original)[0]


def test_the_same_header_list_sent_twice_gets_one_traceparent_each_time(
    broker: Broker, topic: str, spans: SpanRecorder
) -> None:
    headers = [("tenant", b"acme")]
    send(broker, topic, (b"a", None, headers), (b"b", None, headers))
    receiving = consumer(broker, topic)
    records = [next(receiving), next(receiving)]
    receiving.close()
    senders = by_name(spans.spans, f"send {topic}")
    assert [header_values(r.headers, "traceparent") for r in records] == [[traceparent(s)] for s in senders]
    assert headers == [("tenant", b"acme")]


def test_keys_and_tombstones(broker: Broker, topic: str, spans: SpanRecorder) -> None:
    sending = producer(broker, key_serializer=lambda key: key if isinstance(key, bytes) else key.encode())
    sending.send(topic, None, key="customer-7").get(timeout=WAIT_SECONDS)
    sending.send(topic, b"v", key=b"\xff\xfe").get(timeout=WAIT_SECONDS)
    sending.close()
    tombstone, binary = by_name(spans.spans, f"send {topic}")
    check_send(
        tombstone,
        broker,
        topic,
        client_id="orders-api",
        offset=0,
        extra={"messaging.kafka.message.key": "customer-7", "messaging.kafka.message.tombstone": True},
    )
    check_send(
        binary, broker, topic, client_id="orders-api", offset=1, extra={"messaging.message.body.size": 1}
    )
    receiving = consumer(broker, topic)
    next(receiving), next(receiving)
    receiving.close()
    first, second = by_name(spans.spans, f"process {topic}")
    check_process(
        first,
        broker,
        topic,
        tombstone,
        client_id="worker",
        group=None,
        offset=0,
        extra={"messaging.kafka.message.key": "customer-7", "messaging.kafka.message.tombstone": True},
    )
    check_process(
        second,
        broker,
        topic,
        binary,
        client_id="worker",
        group=None,
        offset=1,
        extra={"messaging.message.body.size": 1},
    )


def test_a_send_that_raises_is_an_error_span_and_the_error_reaches_the_caller(
    broker: Broker, spans: SpanRecorder
) -> None:
    sending = producer(broker)
    with pytest.raises(ValueError, match="illegal"):
        sending.send("bad topic!", b"v")
    sending.close()
    span = spans.named("send bad topic!")
    assert span.kind is SpanKind.PRODUCER
    check_error(span, "ValueError")
    assert [event.name for event in span.events] == ["exception"]


def test_a_delivery_that_fails_marks_the_send_span_and_the_future_still_fails(
    broker: Broker, spans: SpanRecorder
) -> None:
    with running_broker(broker.name) as own:
        sending = KafkaProducer(
            bootstrap_servers=own.bootstrap, request_timeout_ms=500, delivery_timeout_ms=1000, retries=0
        )
        sending.send("late", b"warm-up").get(timeout=WAIT_SECONDS)
        errors: list[BaseException] = []
        with unresponsive(own):
            future = sending.send("late", b"lost")
            future.add_errback(errors.append)
            with pytest.raises(RequestTimedOutError):
                future.get(timeout=WAIT_SECONDS)
        sending.close(timeout=5)
    ok, failed = by_name(spans.spans, "send late")
    assert ok.status.is_ok
    check_error(failed, "kafka.errors.RequestTimedOutError")
    assert [type(error) for error in errors] == [RequestTimedOutError]


def test_b3_headers_carry_the_context(broker: Broker, topic: str) -> None:
    from tracekit.testing import capture_spans

    with capture_spans(propagators=["b3multi"]) as recorder:
        send(broker, topic, (b"a", None, None))
        receiving = consumer(broker, topic)
        record = next(receiving)
        receiving.close()
        sent = recorder.named(f"send {topic}")
        processed = recorder.named(f"process {topic}")
    assert sorted(name for name, _ in record.headers) == ["x-b3-sampled", "x-b3-spanid", "x-b3-traceid"]
    assert header_values(record.headers, "x-b3-traceid") == [f"{ids(sent)[0]:032x}".encode()]
    assert processed.parent is not None
    assert processed.parent.span_id == ids(sent)[1]


def test_old_attribute_names_under_messaging_dup(broker: Broker, topic: str) -> None:
    from tracekit.testing import capture_spans

    with capture_spans(semconv_opt_in=["messaging/dup"]) as recorder:
        send(broker, topic, (b"a", None, None))
        receiving = consumer(broker, topic, group_id="dup-group")
        next(receiving)
        receiving.close()
        sent = recorder.named(f"send {topic}")
        processed = recorder.named(f"process {topic}")
    assert sent.attributes is not None
    assert processed.attributes is not None
    assert sent.attributes["messaging.operation"] == "publish"
    assert sent.attributes["messaging.client_id"] == "orders-api"
    assert sent.attributes["messaging.kafka.destination.partition"] == 0
    assert sent.attributes["messaging.kafka.message.offset"] == 0
    assert processed.attributes["messaging.operation"] == "process"
    assert processed.attributes["messaging.kafka.consumer.group"] == "dup-group"
    assert processed.attributes["messaging.destination.partition.id"] == "0"


def test_suppressed_instrumentation_sends_no_span_and_no_headers(
    broker: Broker, topic: str, spans: SpanRecorder
) -> None:
    with suppressed():
        send(broker, topic, (b"a", None, [("tenant", b"acme")]))
        receiving = consumer(broker, topic)
        record = next(receiving)
        receiving.close()
    assert record.headers == [("tenant", b"acme")]
    assert spans.spans == []


def test_unconfigured_tracing_leaves_records_alone(broker: Broker, topic: str) -> None:
    tracekit.instrument("kafka_python")
    send(broker, topic, (b"a", None, [("tenant", b"acme")]))
    receiving = consumer(broker, topic)
    record = next(receiving)
    receiving.close()
    assert record.headers == [("tenant", b"acme")]


def test_a_record_received_inside_a_span_keeps_the_producer_as_parent_and_links_the_span(
    broker: Broker, topic: str, spans: SpanRecorder
) -> None:
    send(broker, topic, (b"a", None, None))
    with _state.tracer.start_as_current_span("worker loop") as loop:
        receiving = consumer(broker, topic)
        next(receiving)
        receiving.close()
        assert trace.get_current_span() is loop, "close() did not restore the surrounding span"
    check_process(
        spans.named(f"process {topic}"),
        broker,
        topic,
        spans.named(f"send {topic}"),
        client_id="worker",
        group=None,
        offset=0,
        extra={"messaging.message.body.size": 1},
        ambient=spans.named("worker loop"),
    )
