"""confluent-kafka against real brokers: the rebound Producer / Consumer classes, the serializing
producer and deserializing consumer, delivery callbacks, batches and errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from typing import Any

import confluent_kafka
import pytest
from confluent_kafka import DeserializingConsumer, KafkaError, SerializingProducer, TopicPartition
from confluent_kafka.serialization import StringDeserializer, StringSerializer
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
    traceparent,
)
from opentelemetry import trace
from opentelemetry.trace import SpanKind

import tracekit
import tracekit.kafka
from tracekit._patch import original_of
from tracekit.testing import SpanRecorder


def producer(broker: Broker, **config: Any) -> confluent_kafka.Producer:
    return confluent_kafka.Producer(
        {"bootstrap.servers": broker.bootstrap, "client.id": "orders-api", **config}
    )


def consumer_config(broker: Broker, **config: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": broker.bootstrap,
        "client.id": "worker",
        "group.id": "unused",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "fetch.wait.max.ms": 100,
        **config,
    }


def consumer(
    broker: Broker, topic: str, *, subscribe: bool = False, **config: Any
) -> confluent_kafka.Consumer:
    """Partition 0 of ``topic`` from the start: assigned, or as a group member with ``subscribe``."""
    made = confluent_kafka.Consumer(consumer_config(broker, **config))
    if subscribe:
        made.subscribe([topic])
    else:
        made.assign([TopicPartition(topic, 0, 0)])
    return made


def poll_one(receiving: Any) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        message = receiving.poll(0.5)
        if message is not None:
            return message
    raise AssertionError("no message within the time limit")


def produce(broker: Broker, topic: str, *records: tuple[Any, Any, Any]) -> list[tuple[Any, Any]]:
    """Produce ``(value, key, headers)`` records; the delivery reports, in order."""
    reports: list[tuple[Any, Any]] = []
    sending = producer(broker)
    for value, key, headers in records:
        sending.produce(topic, value, key, headers=headers, on_delivery=lambda e, m: reports.append((e, m)))
    assert sending.flush(WAIT_SECONDS) == 0
    return reports


def test_produce_then_poll_is_one_trace_with_the_callers_headers_kept(
    broker: Broker, topic: str, spans: SpanRecorder
) -> None:
    assert isinstance(producer(broker), original_of(confluent_kafka.Producer))
    headers = {"tenant": b"acme", "origin": "web"}
    reports = produce(broker, topic, (b"order-1", "o-1", headers))
    assert headers == {"tenant": b"acme", "origin": "web"}, "the caller's dict was changed"
    assert [(error, message.offset()) for error, message in reports] == [(None, 0)], (
        "the callback did not run"
    )

    receiving = consumer(broker, topic)
    message = poll_one(receiving)
    current = trace.get_current_span().get_span_context()
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
        group="unused",
        offset=0,
        extra={"messaging.kafka.message.key": "o-1", "messaging.message.body.size": 7},
    )
    assert sorted(message.headers()) == sorted(
        [
            ("tenant", b"acme"),
            ("origin", b"web"),
            ("traceparent", traceparent(sent)),
            ("tracestate", ROOT_TRACESTATE),
        ]
    )
    assert (current.trace_id, current.span_id) == ids(processed)
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_list_headers_keep_their_order_and_duplicates(
    broker: Broker, topic: str, spans: SpanRecorder
) -> None:
    headers = [("tenant", b"acme"), ("tenant", b"other")]
    produce(broker, topic, (b"a", None, headers))
    receiving = consumer(broker, topic)
    message = poll_one(receiving)
    receiving.close()
    sent = spans.named(f"send {topic}")
    assert message.headers() == [
        ("tenant", b"acme"),
        ("tenant", b"other"),
        ("traceparent", traceparent(sent)),
        ("tracestate", ROOT_TRACESTATE),
    ]
    assert headers == [("tenant", b"acme"), ("tenant", b"other")]


def test_the_process_span_ends_at_the_next_poll_and_at_close(
    broker: Broker, topic: str, spans: SpanRecorder
) -> None:
    produce(broker, topic, (b"a", None, None), (b"b", None, None))
    receiving = consumer(broker, topic)
    poll_one(receiving)
    assert by_name(spans.spans, f"process {topic}") == []
    poll_one(receiving)
    (first,) = by_name(spans.spans, f"process {topic}")
    receiving.close()
    first_again, second = by_name(spans.spans, f"process {topic}")
    assert ids(first_again) == ids(first)
    assert first.end_time is not None
    assert second.start_time is not None
    assert first.end_time <= second.start_time
    assert [span.attributes["messaging.kafka.offset"] for span in (first, second)] == [0, 1]  # type: ignore[index]
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_a_group_member_records_its_group(broker: Broker, topic: str, spans: SpanRecorder) -> None:
    produce(broker, topic, (b"a", None, None))
    receiving = consumer(broker, topic, subscribe=True, **{"group.id": "billing"})
    message = poll_one(receiving)
    receiving.commit(message, asynchronous=False)
    receiving.close()
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


def test_consume_makes_one_poll_span_and_process_scopes_each_record(
    broker: Broker, topic: str, spans: SpanRecorder
) -> None:
    produce(broker, topic, (b"a", None, None), (b"b", None, None), (b"c", None, None))
    senders = by_name(spans.spans, f"send {topic}")
    receiving = consumer(broker, topic)
    messages: list[Any] = []
    deadline = time.monotonic() + WAIT_SECONDS
    while len(messages) < 3 and time.monotonic() < deadline:
        messages.extend(receiving.consume(3, 0.5))
    assert len(messages) == 3
    for message in messages:
        with tracekit.kafka.process(message):
            pass
    receiving.close()
    polls = by_name(spans.spans, f"poll {topic}")
    assert sum(span.attributes["messaging.batch.message_count"] for span in polls) == 3  # type: ignore[index,misc]
    if len(polls) == 1:
        check_poll(polls[0], broker, topic, senders, count=3, client_id="worker", group="unused")
    processed = by_name(spans.spans, f"process {topic}")
    for span, sender, offset in zip(processed, senders, range(3), strict=True):
        check_process(
            span,
            broker,
            topic,
            sender,
            client_id="worker",
            group="unused",
            offset=offset,
            extra={"messaging.message.body.size": 1},
        )


def test_a_failed_delivery_marks_the_send_span_and_the_callback_gets_the_original_arguments(
    broker: Broker, spans: SpanRecorder
) -> None:
    reports: list[tuple[Any, Any]] = []
    sending = producer(broker, **{"message.timeout.ms": 5000})
    sending.produce("bad topic!", b"v", on_delivery=lambda error, message: reports.append((error, message)))
    sending.flush(WAIT_SECONDS)
    ((error, message),) = reports
    assert isinstance(error, KafkaError)
    assert message.topic() == "bad topic!"
    span = spans.named("send bad topic!")
    assert span.kind is SpanKind.PRODUCER
    check_error(span, error.name())
    assert span.status.description == error.str()


def test_the_delivery_callback_from_the_configuration_still_runs(
    broker: Broker, topic: str, spans: SpanRecorder
) -> None:
    reports: list[Any] = []
    sending = producer(broker, on_delivery=lambda error, message: reports.append((error, message.offset())))
    sending.produce(topic, b"v")
    sending.produce(
        topic, b"w", callback=lambda error, message: reports.append(("callback", message.offset()))
    )
    sending.flush(WAIT_SECONDS)
    assert reports == [(None, 0), ("callback", 1)]
    assert [span.attributes["messaging.kafka.offset"] for span in by_name(spans.spans, f"send {topic}")] == [
        0,
        1,
    ]  # type: ignore[index]


def test_delivery_report_only_error_ends_the_span_at_produce(
    broker: Broker, topic: str, spans: SpanRecorder
) -> None:
    sending = producer(broker, **{"delivery.report.only.error": True})
    sending.produce(topic, b"v")
    (span,) = by_name(spans.spans, f"send {topic}")
    sending.flush(WAIT_SECONDS)
    check_send(
        span, broker, topic, client_id="orders-api", partition=None, extra={"messaging.message.body.size": 1}
    )


def test_a_produce_that_raises_is_an_error_span(broker: Broker, spans: SpanRecorder) -> None:
    sending = producer(broker)
    with pytest.raises(TypeError):
        sending.produce(None, b"v")  # type: ignore[arg-type]
    (span,) = spans.spans
    assert span.name == "send"
    check_error(span, "TypeError")


def test_a_poll_error_is_an_error_poll_span(broker: Broker, spans: SpanRecorder) -> None:
    receiving = confluent_kafka.Consumer(
        consumer_config(
            broker, **{"allow.auto.create.topics": False, "topic.metadata.refresh.interval.ms": 200}
        )
    )
    receiving.subscribe(["never-created"])
    messages = []
    deadline = time.monotonic() + WAIT_SECONDS
    while not messages and time.monotonic() < deadline:
        message = receiving.poll(0.2)
        if message is not None and message.error() is not None:
            messages.append(message)
    receiving.close()
    (error_message,) = messages
    (span,) = by_name(spans.spans, "poll never-created")
    assert span.kind is SpanKind.CLIENT
    check_error(span, error_message.error().name())


def test_serializing_producer_and_deserializing_consumer(
    broker: Broker, topic: str, spans: SpanRecorder
) -> None:
    sending = SerializingProducer(
        {
            "bootstrap.servers": broker.bootstrap,
            "client.id": "orders-api",
            "key.serializer": StringSerializer(),
            "value.serializer": StringSerializer(),
        }
    )
    sending.produce(topic, key="o-1", value="order-1", headers=[("tenant", b"acme")])
    sending.flush(WAIT_SECONDS)
    receiving = DeserializingConsumer(
        {
            **consumer_config(broker),
            "key.deserializer": StringDeserializer(),
            "value.deserializer": StringDeserializer(),
        }
    )
    receiving.assign([TopicPartition(topic, 0, 0)])
    message = poll_one(receiving)
    receiving.close()
    assert (message.key(), message.value()) == ("o-1", "order-1")
    sent = spans.named(f"send {topic}")
    check_send(
        sent,
        broker,
        topic,
        client_id="orders-api",
        offset=0,
        extra={"messaging.kafka.message.key": "o-1", "messaging.message.body.size": 7},
    )
    assert header_values(message.headers(), "traceparent") == [traceparent(sent)]
    check_process(
        spans.named(f"process {topic}"),
        broker,
        topic,
        sent,
        client_id="worker",
        group="unused",
        offset=0,
        extra={"messaging.kafka.message.key": "o-1"},
    )


def test_uninstrument_restores_the_classes(spans: SpanRecorder) -> None:
    traced = confluent_kafka.Producer
    tracekit.uninstrument("confluent_kafka")
    assert confluent_kafka.Producer is original_of(traced)
    assert confluent_kafka.Consumer.__module__ == "cimpl"


def test_a_class_taken_before_patching_is_named_in_a_warning() -> None:
    script = textwrap.dedent(
        """
        import logging, sys
        logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")
        from confluent_kafka import Producer as EarlyProducer
        import tracekit
        tracekit.configure(exporters=[])
        import confluent_kafka
        print("traced", confluent_kafka.Producer is not EarlyProducer)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "traced True" in lines
    warnings = [line for line in lines if "took confluent_kafka's Producer or Consumer" in line]
    assert len(warnings) == 1, lines
    assert warnings[0].startswith("tracekit: __main__.EarlyProducer took"), lines


def test_no_warning_when_configured_before_the_import() -> None:
    script = textwrap.dedent(
        """
        import logging, sys
        logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")
        import tracekit
        tracekit.configure(exporters=[])
        from confluent_kafka import Producer
        print("traced", Producer.__mro__[1].__module__)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["traced cimpl"]
