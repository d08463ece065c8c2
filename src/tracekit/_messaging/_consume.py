"""Receive wrappers: a record handed out one at a time gets a process span, a batch a poll span.

Sync and async wrappers share every line of logic; a failed receive makes a ``poll`` span
with the error, an empty one makes none.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import Link, SpanKind

from tracekit import _state
from tracekit._messaging._attributes import (
    client_attributes,
    message_attributes,
    operation_attributes,
    record_error,
)
from tracekit._messaging._common import (
    Args,
    Attributes,
    Client,
    Config,
    Consumer,
    Kwargs,
    active_config,
    client_of,
)
from tracekit._messaging._scope import (
    BATCHES,
    OPEN_SCOPE,
    SCOPES_BY_CONSUMER,
    Record,
    Scope,
    end_open_scope,
    process_span,
    record_field,
)
from tracekit._safety import report
from tracekit._semconv import (
    MESSAGING_BATCH_MESSAGE_COUNT,
    MESSAGING_DESTINATION_NAME,
    MESSAGING_MESSAGE_BODY_SIZE,
)
from tracekit._suppression import Layer

__all__ = ["RECEIVING", "async_receive_one", "closing", "receive_batch", "receive_one"]

#: A receive call made inside another one (kafka-python's iterator polls underneath).
RECEIVING = Layer("messaging.receive")


def _hand_out(consumer: Consumer, instance: Any, start: int, record: Any) -> None:
    """``record`` goes to the application: open its process scope in this context."""
    config = active_config()
    if config is None:
        return
    try:
        if consumer.error_of is not None:
            error = consumer.error_of(record)
            if error is not None:
                if error:
                    _receive_failed(
                        config, consumer, instance, start, error, None, record_field(record, "topic")
                    )
                return
        client = client_of(instance, consumer.client)
        span, current = process_span(config, Record(record), client)
        token = otel_context.attach(current)
        scope = Scope(consumer.integration, span, current, token, id(instance), record)
        OPEN_SCOPE.set(scope)
        SCOPES_BY_CONSUMER[id(instance)] = scope
    except Exception as exc:
        report(consumer.integration, exc)


def _receive_failed(
    config: Config,
    consumer: Consumer,
    instance: Any,
    start: int,
    error_type: str,
    exc: BaseException | None,
    topic: Any = None,
) -> None:
    attributes: Attributes = {}
    operation_attributes(attributes, "receive", "poll", "receive", config.dup)
    if isinstance(topic, str) and topic:
        attributes[MESSAGING_DESTINATION_NAME] = topic
    client_attributes(attributes, client_of(instance, consumer.client), config.dup)
    name = f"poll {topic}" if isinstance(topic, str) and topic else "poll"
    span = _state.tracer.start_known_span(name, None, SpanKind.CLIENT, attributes, (), start)
    record_error(span, error_type, exc)
    span.end()


def _failed_receive(consumer: Consumer, instance: Any, start: int, exc: BaseException) -> None:
    if isinstance(exc, (StopIteration, StopAsyncIteration)) or not isinstance(exc, Exception):
        return
    config = active_config()
    if config is None:
        return
    try:
        _receive_failed(config, consumer, instance, start, consumer.error_type(exc), exc)
    except Exception as internal:
        report(consumer.integration, internal)


def _batch_received(consumer: Consumer, instance: Any, start: int, records: list[Any]) -> None:
    config = active_config()
    if config is None or not records:
        return
    try:
        client = client_of(instance, consumer.client)
        links: list[Link] = []
        places: set[tuple[Any, Any]] = set()
        errors: list[str] = []
        remembered: dict[int, tuple[Any, Client]] = {}
        count = 0
        for record in records:
            if consumer.error_of is not None:
                error = consumer.error_of(record)
                if error is not None:
                    if error:
                        errors.append(error)
                    continue
            count += 1
            remembered[id(record)] = (record, client)
            read = Record(record)
            places.add((read.topic, read.partition))
            creation = read.creation(config)
            if creation.is_valid:
                link_attributes: Attributes = {}
                if isinstance(read.topic, str):
                    link_attributes[MESSAGING_DESTINATION_NAME] = read.topic
                message_attributes(link_attributes, read.partition, read.offset, None, b"", None, False)
                link_attributes.pop(MESSAGING_MESSAGE_BODY_SIZE, None)
                links.append(Link(creation, link_attributes))
        BATCHES[id(instance)] = remembered
        topics = {topic for topic, _ in places}
        topic = next(iter(topics)) if len(topics) == 1 else None
        attributes: Attributes = {}
        operation_attributes(attributes, "receive", "poll", "receive", config.dup)
        if isinstance(topic, str):
            attributes[MESSAGING_DESTINATION_NAME] = topic
            if len(places) == 1:
                message_attributes(attributes, next(iter(places))[1], None, None, b"", None, config.dup)
                attributes.pop(MESSAGING_MESSAGE_BODY_SIZE, None)
        attributes[MESSAGING_BATCH_MESSAGE_COUNT] = count
        client_attributes(attributes, client, config.dup)
        name = f"poll {topic}" if isinstance(topic, str) and topic else "poll"
        span = _state.tracer.start_known_span(name, None, SpanKind.CLIENT, attributes, links, start)
        if errors:
            record_error(span, errors[0], None)
        span.end()
    except Exception as exc:
        report(consumer.integration, exc)


def _before_receive(instance: Any) -> int:
    """A receive call starts: open process spans (this context's, this consumer's) end; the start time."""
    if OPEN_SCOPE.get() is not None or SCOPES_BY_CONSUMER:
        end_open_scope()
        end_open_scope(id(instance))
    return time.time_ns()


def receive_one(consumer: Consumer) -> Callable[[Any, Any, Args, Kwargs], Any]:
    """A wrapt wrapper for a synchronous call returning one record (or ``None``)."""

    def wrapper(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        if RECEIVING.active():
            return wrapped(*args, **kwargs)
        start = _before_receive(instance)
        if _state.current is None:
            return wrapped(*args, **kwargs)
        token = RECEIVING.enter()
        try:
            record = wrapped(*args, **kwargs)
        except BaseException as exc:
            _failed_receive(consumer, instance, start, exc)
            raise
        finally:
            RECEIVING.exit(token)
        if record is not None:
            _hand_out(consumer, instance, start, record)
        return record

    return wrapper


def async_receive_one(consumer: Consumer) -> Callable[[Any, Any, Args, Kwargs], Any]:
    """:func:`receive_one` for a coroutine method."""

    async def wrapper(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        if RECEIVING.active():
            return await wrapped(*args, **kwargs)
        start = _before_receive(instance)
        if _state.current is None:
            return await wrapped(*args, **kwargs)
        token = RECEIVING.enter()
        try:
            record = await wrapped(*args, **kwargs)
        except BaseException as exc:
            _failed_receive(consumer, instance, start, exc)
            raise
        finally:
            RECEIVING.exit(token)
        if record is not None:
            _hand_out(consumer, instance, start, record)
        return record

    return wrapper


def _flatten(result: Any) -> list[Any]:
    if isinstance(result, Mapping):
        return [record for records in result.values() for record in records]
    return list(result or ())


def receive_batch(consumer: Consumer, *, is_async: bool = False) -> Callable[[Any, Any, Args, Kwargs], Any]:
    """A wrapt wrapper for a call returning a batch: a list, or lists by partition in a dict."""

    def before(instance: Any) -> int | None:
        if RECEIVING.active():
            return None
        start = _before_receive(instance)
        return None if _state.current is None else start

    if is_async:

        async def async_wrapper(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
            start = before(instance)
            if start is None:
                return await wrapped(*args, **kwargs)
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as exc:
                _failed_receive(consumer, instance, start, exc)
                raise
            _batch_received(consumer, instance, start, _flatten(result))
            return result

        return async_wrapper

    def wrapper(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        start = before(instance)
        if start is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            _failed_receive(consumer, instance, start, exc)
            raise
        _batch_received(consumer, instance, start, _flatten(result))
        return result

    return wrapper


def _closed(consumer: Consumer, instance: Any) -> None:
    try:
        end_open_scope(id(instance))
        BATCHES.pop(id(instance), None)
    except Exception as exc:
        report(consumer.integration, exc)


def closing(consumer: Consumer, *, is_async: bool = False) -> Callable[[Any, Any, Args, Kwargs], Any]:
    """A wrapt wrapper for close / stop: the consumer's open process span ends first."""
    if is_async:

        async def async_wrapper(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
            _closed(consumer, instance)
            return await wrapped(*args, **kwargs)

        return async_wrapper

    def wrapper(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        _closed(consumer, instance)
        return wrapped(*args, **kwargs)

    return wrapper
