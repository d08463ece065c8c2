"""Across clients and processes: any producer's context reaches any consumer; tracekit's own
failures never reach the application."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import aiokafka
import confluent_kafka
import kafka
import pytest
from kafkacheck import (
    ROOT_TRACESTATE,
    WAIT_SECONDS,
    Broker,
    by_name,
    check_process,
    header_values,
    ids,
    traceparent,
)
from opentelemetry import trace

import tracekit.kafka
from tracekit._messaging import _consume, _produce
from tracekit.testing import SpanRecorder

# --------------------------------------------------------------------------- one adapter per client


def _kafka_python_send(broker: Broker, topic: str, value: bytes, headers: list[tuple[str, bytes]]) -> None:
    producer = kafka.KafkaProducer(bootstrap_servers=broker.bootstrap)
    producer.send(topic, value, headers=headers).get(timeout=WAIT_SECONDS)
    producer.close()


def _confluent_send(broker: Broker, topic: str, value: bytes, headers: list[tuple[str, bytes]]) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(topic, value, headers=headers)
    assert producer.flush(WAIT_SECONDS) == 0


def _aiokafka_send(broker: Broker, topic: str, value: bytes, headers: list[tuple[str, bytes]]) -> None:
    async def main() -> None:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topic, value, headers=headers)
        finally:
            await producer.stop()

    asyncio.run(main())


def _kafka_python_receive(broker: Broker, topic: str) -> tuple[bytes, list[tuple[str, bytes]], Any]:
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        consumer_timeout_ms=int(WAIT_SECONDS * 1000),
        fetch_max_wait_ms=100,
    )
    consumer.assign([kafka.TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    record = next(consumer)
    current = trace.get_current_span()
    consumer.close()
    return record.value, list(record.headers), current


def _confluent_receive(broker: Broker, topic: str) -> tuple[bytes, list[tuple[str, bytes]], Any]:
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": "unused", "fetch.wait.max.ms": 100}
    )
    consumer.assign([confluent_kafka.TopicPartition(topic, 0, 0)])
    deadline = time.monotonic() + WAIT_SECONDS
    message = None
    while message is None and time.monotonic() < deadline:
        message = consumer.poll(0.5)
    assert message is not None
    assert message.error() is None
    current = trace.get_current_span()
    consumer.close()
    return message.value(), list(message.headers() or []), current


def _aiokafka_receive(broker: Broker, topic: str) -> tuple[bytes, list[tuple[str, bytes]], Any]:
    async def main() -> tuple[bytes, list[tuple[str, bytes]], Any]:
        consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, fetch_max_wait_ms=100)
        await consumer.start()
        consumer.assign([aiokafka.TopicPartition(topic, 0)])
        await consumer.seek_to_beginning()
        record = await consumer.getone()  # bounded by run()
        current = trace.get_current_span()
        await consumer.stop()
        return record.value, list(record.headers), current

    return asyncio.run(asyncio.wait_for(main(), WAIT_SECONDS))


SEND: dict[str, Callable[[Broker, str, bytes, list[tuple[str, bytes]]], None]] = {
    "kafka_python": _kafka_python_send,
    "confluent_kafka": _confluent_send,
    "aiokafka": _aiokafka_send,
}
RECEIVE: dict[str, Callable[[Broker, str], tuple[bytes, list[tuple[str, bytes]], Any]]] = {
    "kafka_python": _kafka_python_receive,
    "confluent_kafka": _confluent_receive,
    "aiokafka": _aiokafka_receive,
}


@pytest.mark.parametrize("receiver", sorted(RECEIVE))
@pytest.mark.parametrize("sender", sorted(SEND))
def test_any_producer_to_any_consumer_is_one_trace(
    sender: str, receiver: str, broker: Broker, topic: str, spans: SpanRecorder
) -> None:
    SEND[sender](broker, topic, b"order", [("tenant", b"acme")])
    value, headers, current = RECEIVE[receiver](broker, topic)
    sent = spans.named(f"send {topic}")
    processed = spans.named(f"process {topic}")
    assert value == b"order"
    assert headers == [
        ("tenant", b"acme"),
        ("traceparent", traceparent(sent)),
        ("tracestate", ROOT_TRACESTATE),
    ]
    check_process(
        processed,
        broker,
        topic,
        sent,
        client_id=processed.attributes.get("messaging.client.id"),  # type: ignore[union-attr,arg-type]
        group=processed.attributes.get("messaging.consumer.group.name"),  # type: ignore[union-attr,arg-type]
        offset=0,
        extra={"messaging.message.body.size": 5},
    )
    assert current.get_span_context().span_id == ids(processed)[1]
    assert trace.get_current_span() is trace.INVALID_SPAN


PRODUCER_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tracekit
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracing = tracekit.configure(service_name="checkout", exporters=[exporter])
    import kafka

    bootstrap, topic = sys.argv[1:3]
    with tracekit.span("place order"):
        producer = kafka.KafkaProducer(bootstrap_servers=bootstrap)
        producer.send(topic, b"order.created").get(timeout=20)
        producer.close()
    tracing.force_flush()
    spans = exporter.get_finished_spans()
    print(json.dumps({span.name: [span.context.trace_id, span.context.span_id] for span in spans}))
    """
)


def test_a_producer_in_another_process_continues_in_this_consumer(
    broker: Broker, topic: str, spans: SpanRecorder
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PRODUCER_SCRIPT, broker.bootstrap, topic],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OTEL_TRACES_EXPORTER": "none"},
    )
    assert result.returncode == 0, result.stderr
    remote = json.loads(result.stdout.strip().splitlines()[-1])
    trace_id, send_span_id = remote[f"send {topic}"]
    assert remote["place order"][0] == trace_id

    _confluent_receive(broker, topic)
    processed = spans.named(f"process {topic}")
    assert processed.context is not None
    assert processed.context.trace_id == trace_id
    assert processed.parent is not None
    assert processed.parent.span_id == send_span_id
    assert processed.parent.is_remote


def test_process_outside_a_configured_tracekit_does_nothing(broker: Broker, topic: str) -> None:
    with tracekit.kafka.process(object()) as span:
        assert span is trace.INVALID_SPAN
        assert trace.get_current_span() is trace.INVALID_SPAN


# --------------------------------------------------------------------------- forced internal failures


def _fail(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("forced internal failure")


@pytest.mark.parametrize("part", ["with_context", "message_attributes"])
@pytest.mark.parametrize("sender", sorted(SEND))
def test_a_failure_while_sending_leaves_the_send_untouched(
    sender: str,
    part: str,
    broker: Broker,
    topic: str,
    spans: SpanRecorder,
    monkeypatch: pytest.MonkeyPatch,
    guarded_errors: list[tuple[str, BaseException]],
) -> None:
    monkeypatch.setattr(_produce, part, _fail)
    SEND[sender](broker, topic, b"order", [("tenant", b"acme")])
    assert [(name, str(exc)) for name, exc in guarded_errors] == [(sender, "forced internal failure")]
    guarded_errors.clear()
    monkeypatch.undo()
    value, headers, _ = RECEIVE[sender](broker, topic)
    assert (value, headers) == (b"order", [("tenant", b"acme")])
    # A failure before the span starts makes none; one after it started ends it: none is left open.
    made = by_name(spans.spans, f"send {topic}")
    assert len(made) == {"message_attributes": 0, "with_context": 1}[part]
    assert all(span.end_time is not None for span in made)


@pytest.mark.parametrize("receiver", sorted(RECEIVE))
def test_a_failure_while_receiving_leaves_the_record_untouched(
    receiver: str,
    broker: Broker,
    topic: str,
    spans: SpanRecorder,
    monkeypatch: pytest.MonkeyPatch,
    guarded_errors: list[tuple[str, BaseException]],
) -> None:
    SEND["kafka_python"](broker, topic, b"order", [("tenant", b"acme")])
    sent = spans.named(f"send {topic}")
    monkeypatch.setattr(_consume, "process_span", _fail)
    value, headers, current = RECEIVE[receiver](broker, topic)
    assert (value, header_values(headers, "traceparent")) == (b"order", [traceparent(sent)])
    assert current is trace.INVALID_SPAN
    assert {(name, str(exc)) for name, exc in guarded_errors} == {(receiver, "forced internal failure")}
    guarded_errors.clear()
    assert by_name(spans.spans, f"process {topic}") == []


def test_a_failure_in_a_delivery_report_never_reaches_the_callback(
    broker: Broker,
    topic: str,
    spans: SpanRecorder,
    monkeypatch: pytest.MonkeyPatch,
    guarded_errors: list[tuple[str, BaseException]],
) -> None:
    monkeypatch.setattr(_produce, "_delivery_attributes", _fail)
    reports: list[Any] = []
    producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(
        topic, b"v", on_delivery=lambda error, message: reports.append((error, message.offset()))
    )
    producer.flush(WAIT_SECONDS)
    assert reports == [(None, 0)]
    monkeypatch.undo()
    assert [name for name, _ in guarded_errors] == ["confluent_kafka"]
    guarded_errors.clear()
    (span,) = by_name(spans.spans, f"send {topic}")
    assert span.end_time is not None


def test_the_public_kafka_module_is_one_function_and_imports_no_client() -> None:
    script = (
        "import sys, tracekit.kafka; clients = ('kafka', 'confluent_kafka', 'aiokafka'); "
        "print(tracekit.kafka.__all__, [name for name in clients if name in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['process'] []"
