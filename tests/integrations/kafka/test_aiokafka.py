"""aiokafka against real brokers: send / send_and_wait, getone and async iteration, getmany, errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import RequestTimedOutError, UnknownTopicOrPartitionError
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
    ids,
    running_broker,
    traceparent,
    unresponsive,
)
from opentelemetry import trace
from opentelemetry.trace import SpanKind

import tracekit.kafka
from tracekit import _state
from tracekit.testing import SpanRecorder

T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(main(), WAIT_SECONDS * 2)

    return asyncio.run(bounded())


def producer(broker: Broker, **config: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=broker.bootstrap, client_id="orders-api", **config)


async def consumer(broker: Broker, topic: str, **config: Any) -> AIOKafkaConsumer:
    """Started; partition 0 of ``topic`` from the start, assigned unless ``group_id`` is given."""
    group = config.get("group_id")
    made = AIOKafkaConsumer(
        *([topic] if group else []),
        bootstrap_servers=broker.bootstrap,
        client_id="worker",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=1000,
        **config,
    )
    await made.start()
    if not group:
        made.assign([TopicPartition(topic, 0)])
        await made.seek_to_beginning()
    return made


async def send(broker: Broker, topic: str, *values: bytes, headers: Any = None) -> None:
    sending = producer(broker)
    await sending.start()
    try:
        for value in values:
            await sending.send_and_wait(topic, value, headers=headers)
    finally:
        await sending.stop()


def test_send_and_wait_then_async_for_is_one_trace(broker: Broker, topic: str, spans: SpanRecorder) -> None:
    headers = [("tenant", b"acme")]
    inside: list[Any] = []

    async def main() -> None:
        await send(broker, topic, b"order-1", headers=headers)
        receiving = await consumer(broker, topic)
        async for record in receiving:
            inside.append((record, trace.get_current_span().get_span_context()))
            with _state.tracer.start_as_current_span("reserve stock"):
                await asyncio.sleep(0)
            break
        await receiving.stop()
        inside.append(trace.get_current_span())

    run(main)
    sent = spans.named(f"send {topic}")
    check_send(
        sent, broker, topic, client_id="orders-api", offset=0, extra={"messaging.message.body.size": 7}
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
        extra={"messaging.message.body.size": 7},
    )
    (record, current), after = inside
    assert record.headers == (
        ("tenant", b"acme"),
        ("traceparent", traceparent(sent)),
        ("tracestate", ROOT_TRACESTATE),
    )
    assert (current.trace_id, current.span_id) == ids(processed)
    assert after is trace.INVALID_SPAN
    child = spans.named("reserve stock")
    assert child.parent is not None
    assert child.parent.span_id == ids(processed)[1]


def test_getone_ends_the_previous_process_span(broker: Broker, topic: str, spans: SpanRecorder) -> None:
    async def main() -> list[Any]:
        await send(broker, topic, b"a", b"b")
        receiving = await consumer(broker, topic, group_id="billing")
        first = await receiving.getone()
        open_before = by_name(spans.spans, f"process {topic}")
        second = await receiving.getone()
        ended_after = by_name(spans.spans, f"process {topic}")
        await receiving.commit()
        await receiving.stop()
        return [first.offset, second.offset, len(open_before), len(ended_after)]

    assert run(main) == [0, 1, 0, 1]
    senders = by_name(spans.spans, f"send {topic}")
    processed = by_name(spans.spans, f"process {topic}")
    for span, sender, offset in zip(processed, senders, range(2), strict=True):
        check_process(
            span,
            broker,
            topic,
            sender,
            client_id="worker",
            group="billing",
            offset=offset,
            extra={"messaging.message.body.size": 1},
        )


def test_getmany_makes_a_poll_span_and_process_scopes_each_record(
    broker: Broker, topic: str, spans: SpanRecorder
) -> None:
    async def main() -> None:
        await send(broker, topic, b"a", b"b")
        receiving = await consumer(broker, topic)
        records: list[Any] = []
        while len(records) < 2:
            batch = await receiving.getmany(timeout_ms=int(WAIT_SECONDS * 1000))
            assert batch
            records.extend(record for part in batch.values() for record in part)
        for record in records:
            with tracekit.kafka.process(record):
                await asyncio.sleep(0)
        await receiving.stop()

    run(main)
    senders = by_name(spans.spans, f"send {topic}")
    polls = by_name(spans.spans, f"poll {topic}")
    assert sum(span.attributes["messaging.batch.message_count"] for span in polls) == 2  # type: ignore[index,misc]
    if len(polls) == 1:
        check_poll(polls[0], broker, topic, senders, count=2, client_id="worker", group=None)
    for span, sender, offset in zip(by_name(spans.spans, f"process {topic}"), senders, range(2), strict=True):
        check_process(
            span,
            broker,
            topic,
            sender,
            client_id="worker",
            group=None,
            offset=offset,
            extra={"messaging.message.body.size": 1},
        )


def test_an_exception_inside_process_marks_the_span(broker: Broker, topic: str, spans: SpanRecorder) -> None:
    async def main() -> None:
        await send(broker, topic, b"a")
        receiving = await consumer(broker, topic)
        record = await receiving.getone()
        with pytest.raises(LookupError), tracekit.kafka.process(record):
            raise LookupError("no such order")
        await receiving.stop()

    run(main)
    (span,) = by_name(spans.spans, f"process {topic}")
    check_error(span, "LookupError")
    assert span.parent is not None
    assert span.parent.span_id == ids(spans.named(f"send {topic}"))[1]


def test_a_send_that_raises_is_an_error_span(broker: Broker, spans: SpanRecorder) -> None:
    async def main() -> None:
        sending = producer(broker, request_timeout_ms=3000)
        await sending.start()
        try:
            with pytest.raises(UnknownTopicOrPartitionError):
                await sending.send_and_wait("bad topic!", b"v")
        finally:
            await sending.stop()

    run(main)
    span = spans.named("send bad topic!")
    assert span.kind is SpanKind.PRODUCER
    check_error(span, "aiokafka.errors.UnknownTopicOrPartitionError")


def test_a_delivery_that_fails_marks_the_send_span(broker: Broker, spans: SpanRecorder) -> None:
    async def main(own: Broker) -> None:
        sending = AIOKafkaProducer(bootstrap_servers=own.bootstrap, request_timeout_ms=500)
        await sending.start()
        await sending.send_and_wait("late", b"warm-up")
        with unresponsive(own):
            await asyncio.sleep(0.2)
            future = await sending.send("late", b"lost")
            with pytest.raises(RequestTimedOutError):
                await future
        await sending.stop()

    with running_broker(broker.name) as own:
        run(lambda: main(own))
    ok, failed = by_name(spans.spans, "send late")
    assert ok.status.is_ok
    check_error(failed, "aiokafka.errors.RequestTimedOutError")
