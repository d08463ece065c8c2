"""What every Kafka client integration shares: the header carrier, and send, poll and process spans.

A client integration (``kafka_python``, ``confluent_kafka``, ``aiokafka``) describes its
library as data, a :class:`Producer` and a :class:`Consumer` (the names of a send call's
parameters, how the library reports a delivery, where the client id and the brokers are),
and installs the wrappers made here; sync and async wrappers share every line of logic.

* ``send {topic}``, kind PRODUCER, from the send call until the delivery report (ERROR and
  ``error.type`` when the delivery fails). The configured propagators' headers go into a
  copy of the record's headers, in the form the caller used (list, tuple or dict); headers
  with a propagation field's name already there (a consumed record sent on) are replaced,
  never duplicated, and the send span links to the context they carried.
* ``process {topic}``, kind CONSUMER, for a record handed to the application one at a time
  (iteration, confluent-kafka ``poll``, aiokafka ``getone`` and ``async for``). Its parent
  is the producer's context from the record's headers. It is the current span from the
  moment the record is handed out until the application next receives from a consumer in
  the same context, closes the consumer, or scopes the record with :func:`process`; then
  it ends and the context in force before it is restored. It never stays open across a
  receive call, and it is not carried into a context where it was not made current.
* ``poll {topic}``, kind CLIENT (a ``receive`` operation), for a batch receive (kafka-python
  ``poll``, confluent-kafka ``consume``, aiokafka ``getmany``) that returned records or
  failed: it covers the call and links to every record's creation context. Records of a
  batch get a process span only through :func:`process`.

Empty receives make no span. Nothing here runs when tracing is not configured or
OpenTelemetry's suppression key is set, and tracekit's own failures are reported through
:func:`tracekit._safety.report`, never raised into the application.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from tracekit import _state
from tracekit._propagation import span_injector
from tracekit._safety import report
from tracekit._semconv import (
    ERROR_TYPE,
    MESSAGING_BATCH_MESSAGE_COUNT,
    MESSAGING_CLIENT_ID,
    MESSAGING_CONSUMER_GROUP_NAME,
    MESSAGING_DESTINATION_NAME,
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
    qualified_name,
)
from tracekit._spans import record_exception
from tracekit._suppression import SUPPRESS_INSTRUMENTATION_KEY, Layer, instrumentation_suppressed

__all__ = [
    "HEADERS",
    "Client",
    "Consumer",
    "Delivery",
    "Producer",
    "async_receive_one",
    "async_send",
    "bind_arg",
    "client_of",
    "closing",
    "process",
    "rebind_arg",
    "receive_batch",
    "receive_one",
    "send",
    "split_servers",
]

Args = tuple[Any, ...]
Kwargs = dict[str, Any]
Attributes = dict[str, Any]

_BYTES = (bytes, bytearray, memoryview)
_DEFAULT_PORT = 9092

#: A receive call made inside another one (kafka-python's iterator polls underneath).
RECEIVING = Layer("messaging.receive")

# Bound once: the per-record paths read module globals, not attribute chains.
_get_current = otel_context.get_current
_set_span_in_context = trace.set_span_in_context
_PRODUCER = SpanKind.PRODUCER


# --------------------------------------------------------------------------- the carrier


def _pairs(headers: Any) -> Iterable[Any]:
    if headers is None:
        return ()
    if isinstance(headers, Mapping):
        return headers.items()
    return cast(Iterable[Any], headers)


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, _BYTES):
        return bytes(value).decode("utf-8", "replace")
    return None


class _Headers(Getter[Any]):
    """Kafka record headers for the propagators: ``(str, bytes)`` pairs or a dict, names any case."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        found = []
        for pair in _pairs(carrier):
            if not (isinstance(pair, tuple) and len(pair) == 2):
                continue
            name, value = pair
            if isinstance(name, str) and name.lower() == key:
                text = _text(value)
                if text is not None:
                    found.append(text)
        return found or None

    def keys(self, carrier: Any) -> list[str]:
        return [pair[0] for pair in _pairs(carrier) if isinstance(pair, tuple) and len(pair) == 2]


#: The one getter every Kafka integration extracts with.
HEADERS = _Headers()


def _with_context(headers: Any, carrier: dict[str, str], replaced: frozenset[str]) -> Any:
    """A copy of ``headers`` in the caller's form, ``replaced`` names dropped, ``carrier`` added.

    ``None`` when the form is not one tracekit can copy (the record is then sent as given).
    """
    drop = replaced.union(name.lower() for name in carrier)
    added = [(name, value.encode("utf-8")) for name, value in carrier.items()]
    if headers is None:
        return added
    if isinstance(headers, dict):
        copied = {k: v for k, v in headers.items() if not (isinstance(k, str) and k.lower() in drop)}
        copied.update(added)
        return copied
    if isinstance(headers, (list, tuple)):
        kept = [
            pair
            for pair in headers
            if not (
                isinstance(pair, tuple)
                and len(pair) == 2
                and isinstance(pair[0], str)
                and pair[0].lower() in drop
            )
        ]
        kept.extend(added)
        return tuple(kept) if isinstance(headers, tuple) else kept
    return None


# --------------------------------------------------------------------------- configuration


class _Config:
    """What the settings say about messaging spans, resolved once per configuration."""

    __slots__ = ("dup", "extract", "fields", "inject_span")

    def __init__(self, settings: Any) -> None:
        # Imported here, once configure() has loaded it safely (see tracekit._propagation).
        from opentelemetry import propagate

        self.inject_span = span_injector()
        self.extract = propagate.extract
        self.fields = frozenset(name.lower() for name in propagate.get_global_textmap().fields)
        self.dup = "messaging/dup" in settings.semconv_opt_in


_config: _Config | None = None
_config_for: object = None


def _active() -> _Config | None:
    """The configuration to trace with, or ``None``: not configured, disabled or suppressed."""
    current = _state.current
    if current is None or instrumentation_suppressed():
        return None
    return _configuration(current)


def _configuration(current: Any) -> _Config | None:
    global _config, _config_for
    if _config_for is not current:
        _config = _Config(current.settings) if current.enabled else None
        _config_for = current
    return _config


# --------------------------------------------------------------------------- descriptions


@dataclass(frozen=True)
class Client:
    """Who talks to the broker: read once per producer or consumer object."""

    client_id: str | None = None
    group: str | None = None
    address: str | None = None
    port: int | None = None


_CLIENT = "_tracekit_client"


def client_of(instance: Any, describe: Callable[[Any], Client]) -> Client:
    """``describe(instance)``, remembered on the instance."""
    found = getattr(instance, "__dict__", {}).get(_CLIENT)
    if found is None:
        found = describe(instance)
        with contextlib.suppress(AttributeError, TypeError):
            vars(instance)[_CLIENT] = found
    return found


def split_servers(servers: Any) -> tuple[str | None, int | None]:
    """``(server.address, server.port)`` of the first bootstrap server (``host:port`` list or string)."""
    if isinstance(servers, (list, tuple)):
        servers = servers[0] if servers else None
    if not isinstance(servers, str):
        return None, None
    first = servers.split(",")[0].strip()
    if "://" in first:
        first = first.split("://", 1)[1]
    if first.startswith("["):
        host, _, rest = first[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif first.count(":") == 1:
        host, _, port_text = first.partition(":")
    else:
        host, port_text = first, ""
    if not host:
        return None, None
    return host, int(port_text) if port_text.isdigit() else _DEFAULT_PORT


@dataclass(frozen=True)
class Producer:
    """A producer class's send method, as data."""

    integration: str
    #: The send method's parameters in order (``topic``, ``value``, ``key``, ``headers``,
    #: ``partition`` are looked up by name; the others are only skipped over).
    params: tuple[str, ...]
    client: Callable[[Any], Client]
    #: ``watch(result, delivery)``: arrange for the library's delivery report on ``result``
    #: (what the send call returned) to reach ``delivery``.
    watch: Callable[[Any, Delivery], None] | None = None
    #: ``prepare(instance, delivery, args, kwargs)``: last changes to the call (confluent-kafka
    #: puts its delivery callback there).
    prepare: Callable[[Any, Delivery, Args, Kwargs], tuple[Args, Kwargs]] | None = None


def _error_type(exc: BaseException) -> str:
    return qualified_name(type(exc))


@dataclass(frozen=True)
class Consumer:
    """A consumer class, as data."""

    integration: str
    client: Callable[[Any], Client]
    #: For libraries that return errors as messages (confluent-kafka): ``None`` for a record,
    #: the ``error.type`` of an error, ``""`` for an event that is neither (end of partition).
    error_of: Callable[[Any], str | None] | None = None
    #: ``error.type`` of an exception raised by a receive call.
    error_type: Callable[[BaseException], str] = _error_type


def _record_error(span: trace.Span, error_type: str, exc: BaseException | None, message: str = "") -> None:
    if exc is not None:
        record_exception(span, exc, error_type)
    elif span.is_recording():
        span.set_attribute(ERROR_TYPE, error_type)
        span.set_status(Status(StatusCode.ERROR, message or error_type))


def _client_attributes(attributes: Attributes, client: Client, dup: bool) -> None:
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
    if isinstance(key, _BYTES):
        try:
            text = bytes(key).decode("utf-8")
        except UnicodeDecodeError:
            return None
        return text if text.isprintable() else None
    return None


def _message_attributes(
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
    if not (isinstance(size, int) and size >= 0) and isinstance(value, _BYTES):
        size = len(value)
    if isinstance(size, int) and size >= 0:
        attributes[MESSAGING_MESSAGE_BODY_SIZE] = size


def _operation(attributes: Attributes, kind: str, name: str, old: str, dup: bool) -> None:
    attributes[MESSAGING_SYSTEM] = "kafka"
    attributes[MESSAGING_OPERATION_TYPE] = kind
    attributes[MESSAGING_OPERATION_NAME] = name
    if dup:
        attributes[OLD_MESSAGING_OPERATION] = old


# --------------------------------------------------------------------------- producing


def bind_arg(params: tuple[str, ...], args: Args, kwargs: Kwargs, name: str) -> Any:
    position = params.index(name)
    if position < len(args):
        return args[position]
    return kwargs.get(name)


def rebind_arg(
    params: tuple[str, ...], args: Args, kwargs: Kwargs, name: str, value: Any
) -> tuple[Args, Kwargs]:
    position = params.index(name)
    if position < len(args):
        return (*args[:position], value, *args[position + 1 :]), kwargs
    return args, {**kwargs, name: value}


def _delivery_attributes(partition: Any, offset: Any, size: Any, dup: bool) -> Attributes:
    """What a delivery report says about the record: its partition, offset and size."""
    attributes: Attributes = {}
    _message_attributes(attributes, partition, offset, None, b"", size, dup)
    if not (isinstance(size, int) and size >= 0):
        del attributes[MESSAGING_MESSAGE_BODY_SIZE]
    return attributes


class Delivery:
    """One record being sent: its span, from the send call until the delivery report."""

    __slots__ = ("args", "config", "context", "ended", "integration", "kwargs", "span", "token")

    def __init__(
        self,
        integration: str,
        config: _Config,
        span: trace.Span,
        context: Context,
        args: Args,
        kwargs: Kwargs,
    ) -> None:
        self.integration = integration
        self.config = config
        self.span = span
        #: The context that makes ``span`` current (its headers were injected from it).
        self.context = context
        self.args = args
        self.kwargs = kwargs
        self.ended = False
        self.token: object = None

    def delivered(self, partition: Any = None, offset: Any = None, size: Any = None) -> None:
        """The broker has the record: record where it went and end the span."""
        if self.ended:
            return
        self.ended = True
        try:
            if self.span.is_recording():
                _state.tracer.set_known_attributes(
                    self.span, _delivery_attributes(partition, offset, size, self.config.dup)
                )
        except Exception as exc:
            report(self.integration, exc)
        self.span.end()

    def failed(self, error_type: str, exc: BaseException | None = None, message: str = "") -> None:
        """The send call raised or the delivery failed: record it and end the span."""
        if self.ended:
            return
        self.ended = True
        try:
            _record_error(self.span, error_type, exc, message)
        except Exception as internal:
            report(self.integration, internal)
        self.span.end()

    def raised(self, exc: BaseException) -> None:
        """The send call raised ``exc``, which the caller re-raises."""
        try:
            error_type = qualified_name(type(exc))
        except Exception as internal:
            report(self.integration, internal)
            error_type = "_OTHER"
        self.failed(error_type, exc)

    def enter(self) -> None:
        """Make the send span current for the library call (serializers, nested spans)."""
        self.token = otel_context.attach(self.context)

    def leave(self) -> None:
        _restore(self.token)
        self.token = None


def _start_send(producer: Producer, instance: Any, args: Args, kwargs: Kwargs) -> Delivery | None:
    current = _state.current
    if current is None:
        return None
    parent = _get_current()
    if parent.get(SUPPRESS_INSTRUMENTATION_KEY):
        return None
    span = None
    try:
        config = _configuration(current)
        if config is None:
            return None
        params = producer.params
        bound = dict(zip(params, args, strict=False))  # extra positionals: the library raises
        bound.update(kwargs)
        topic = bound.get("topic")
        value = bound.get("value")
        headers = bound.get("headers")
        attributes: Attributes = {}
        _operation(attributes, "send", "send", "publish", config.dup)
        if isinstance(topic, str):
            attributes[MESSAGING_DESTINATION_NAME] = topic
        _message_attributes(
            attributes, bound.get("partition"), None, bound.get("key"), value, None, config.dup
        )
        _client_attributes(attributes, client_of(instance, producer.client), config.dup)
        links = None
        if headers is not None and config.fields:
            origin = trace.get_current_span(config.extract(headers, Context(), HEADERS)).get_span_context()
            if origin.is_valid:
                links = [Link(origin)]
        name = f"send {topic}" if isinstance(topic, str) and topic else "send"
        # The context read above is the parent: the SDK need not look it up again.
        span = _state.tracer.start_known_span(name, parent, _PRODUCER, attributes, links)
        context = _set_span_in_context(span, parent)
        carrier: dict[str, str] = {}
        config.inject_span(carrier, span, parent)
        if carrier:
            copied = _with_context(headers, carrier, config.fields)
            if copied is not None:
                args, kwargs = rebind_arg(params, args, kwargs, "headers", copied)
        delivery = Delivery(producer.integration, config, span, context, args, kwargs)
        if producer.prepare is not None:
            delivery.args, delivery.kwargs = producer.prepare(instance, delivery, args, kwargs)
        return delivery
    except Exception as exc:
        report(producer.integration, exc)
        if span is not None:
            span.end()
        return None


def _sent(producer: Producer, delivery: Delivery, result: Any) -> None:
    if producer.watch is None:
        return
    try:
        producer.watch(result, delivery)
    except Exception as exc:
        report(producer.integration, exc)
        delivery.delivered()


def send(producer: Producer) -> Callable[[Any, Any, Args, Kwargs], Any]:
    """A wrapt wrapper for a synchronous send method."""

    def wrapper(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        delivery = _start_send(producer, instance, args, kwargs)
        if delivery is None:
            return wrapped(*args, **kwargs)
        delivery.enter()
        try:
            result = wrapped(*delivery.args, **delivery.kwargs)
        except BaseException as exc:
            delivery.raised(exc)
            raise
        finally:
            delivery.leave()
        _sent(producer, delivery, result)
        return result

    return wrapper


def async_send(producer: Producer) -> Callable[[Any, Any, Args, Kwargs], Any]:
    """:func:`send` for a coroutine method."""

    async def wrapper(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        delivery = _start_send(producer, instance, args, kwargs)
        if delivery is None:
            return await wrapped(*args, **kwargs)
        delivery.enter()
        try:
            result = await wrapped(*delivery.args, **delivery.kwargs)
        except BaseException as exc:
            delivery.raised(exc)
            raise
        finally:
            delivery.leave()
        _sent(producer, delivery, result)
        return result

    return wrapper


# --------------------------------------------------------------------------- consuming


def _field(record: Any, name: str) -> Any:
    """A record field: an attribute (kafka-python, aiokafka) or a method (confluent-kafka)."""
    value = getattr(record, name, None)
    return value() if callable(value) else value


class _Record:
    """What a span needs from a consumed record, read once."""

    __slots__ = ("headers", "key", "offset", "partition", "size", "topic", "value")

    def __init__(self, record: Any) -> None:
        self.topic = _field(record, "topic")
        self.partition = _field(record, "partition")
        self.offset = _field(record, "offset")
        self.key = _field(record, "key")
        self.value = _field(record, "value")
        self.headers = _field(record, "headers")
        self.size = getattr(record, "serialized_value_size", None)

    def creation(self, config: _Config) -> trace.SpanContext:
        """The producer's span context carried in the headers (invalid when there is none)."""
        if not self.headers:
            return trace.INVALID_SPAN_CONTEXT
        extracted = config.extract(self.headers, Context(), HEADERS)
        return trace.get_current_span(extracted).get_span_context()


def _restore(token: Any) -> None:
    """Undo an attach, quietly when it was made in another context (a task, a thread)."""
    if isinstance(token, Token):
        with contextlib.suppress(ValueError, RuntimeError):
            token.var.reset(token)
    elif token is not None:
        otel_context.detach(token)


class _Scope:
    """A process span and the context it was made current in."""

    __slots__ = ("context", "ended", "integration", "owner", "record", "span", "token")

    def __init__(
        self, integration: str, span: trace.Span, context: Context, token: object, owner: int, record: Any
    ) -> None:
        self.integration = integration
        self.span = span
        self.context = context
        self.token = token
        self.owner = owner
        self.record = record
        self.ended = False

    def end(self) -> None:
        """End the span (once) and, when this context still has it current, restore the one before."""
        if not self.ended:
            self.ended = True
            self.span.end()
        if otel_context.get_current() is self.context:
            _restore(self.token)


#: The automatic process scope open in this context, if any.
_open: ContextVar[_Scope | None] = ContextVar("tracekit.messaging.open", default=None)
#: Each consumer's open automatic process scope, wherever it was opened (a task of its own
#: under asyncio.wait_for, say): the consumer's next receive or close ends it all the same.
_by_consumer: dict[int, _Scope] = {}

#: Records of each consumer's latest batch, so that process(record) knows their consumer.
_batches: dict[int, dict[int, tuple[Any, Client]]] = {}


def _end_open(owner: int | None = None) -> None:
    """End the scope open in this context (only if it is ``owner``'s) and ``owner``'s own."""
    scope = _open.get()
    if scope is not None and (owner is None or scope.owner == owner):
        _open.set(None)
        _end(scope)
    if owner is not None:
        scope = _by_consumer.pop(owner, None)
        if scope is not None:
            _end(scope)


def _end(scope: _Scope) -> None:
    try:
        scope.end()
    except Exception as exc:
        report(scope.integration, exc)


def _process_span(config: _Config, record: _Record, client: Client) -> tuple[trace.Span, Context]:
    """Start a process span for ``record``: parent the producer's context, links as the conventions say."""
    ambient = otel_context.get_current()
    links = None
    parent = ambient
    if record.headers:
        parent = config.extract(record.headers, ambient, HEADERS)
        carried = trace.get_current_span(parent)
        around = trace.get_current_span(ambient)
        if carried is not around and carried.get_span_context().is_valid:
            links = [Link(carried.get_span_context())]
            if around.get_span_context().is_valid:
                links.append(Link(around.get_span_context()))
    attributes: Attributes = {}
    _operation(attributes, "process", "process", "process", config.dup)
    topic = record.topic
    if isinstance(topic, str):
        attributes[MESSAGING_DESTINATION_NAME] = topic
    _message_attributes(
        attributes, record.partition, record.offset, record.key, record.value, record.size, config.dup
    )
    _client_attributes(attributes, client, config.dup)
    name = f"process {topic}" if isinstance(topic, str) and topic else "process"
    span = _state.tracer.start_known_span(name, parent, SpanKind.CONSUMER, attributes, links)
    return span, trace.set_span_in_context(span, parent)


def _hand_out(consumer: Consumer, instance: Any, start: int, record: Any) -> None:
    """``record`` goes to the application: open its process scope in this context."""
    config = _active()
    if config is None:
        return
    try:
        if consumer.error_of is not None:
            error = consumer.error_of(record)
            if error is not None:
                if error:
                    _receive_failed(config, consumer, instance, start, error, None, _field(record, "topic"))
                return
        client = client_of(instance, consumer.client)
        span, current = _process_span(config, _Record(record), client)
        token = otel_context.attach(current)
        scope = _Scope(consumer.integration, span, current, token, id(instance), record)
        _open.set(scope)
        _by_consumer[id(instance)] = scope
    except Exception as exc:
        report(consumer.integration, exc)


def _receive_failed(
    config: _Config,
    consumer: Consumer,
    instance: Any,
    start: int,
    error_type: str,
    exc: BaseException | None,
    topic: Any = None,
) -> None:
    attributes: Attributes = {}
    _operation(attributes, "receive", "poll", "receive", config.dup)
    if isinstance(topic, str) and topic:
        attributes[MESSAGING_DESTINATION_NAME] = topic
    _client_attributes(attributes, client_of(instance, consumer.client), config.dup)
    name = f"poll {topic}" if isinstance(topic, str) and topic else "poll"
    span = _state.tracer.start_known_span(name, None, SpanKind.CLIENT, attributes, (), start)
    _record_error(span, error_type, exc)
    span.end()


def _failed_receive(consumer: Consumer, instance: Any, start: int, exc: BaseException) -> None:
    if isinstance(exc, (StopIteration, StopAsyncIteration)) or not isinstance(exc, Exception):
        return
    config = _active()
    if config is None:
        return
    try:
        _receive_failed(config, consumer, instance, start, consumer.error_type(exc), exc)
    except Exception as internal:
        report(consumer.integration, internal)


def _batch_received(consumer: Consumer, instance: Any, start: int, records: list[Any]) -> None:
    config = _active()
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
            read = _Record(record)
            places.add((read.topic, read.partition))
            creation = read.creation(config)
            if creation.is_valid:
                link_attributes: Attributes = {}
                if isinstance(read.topic, str):
                    link_attributes[MESSAGING_DESTINATION_NAME] = read.topic
                _message_attributes(link_attributes, read.partition, read.offset, None, b"", None, False)
                link_attributes.pop(MESSAGING_MESSAGE_BODY_SIZE, None)
                links.append(Link(creation, link_attributes))
        _batches[id(instance)] = remembered
        topics = {topic for topic, _ in places}
        topic = next(iter(topics)) if len(topics) == 1 else None
        attributes: Attributes = {}
        _operation(attributes, "receive", "poll", "receive", config.dup)
        if isinstance(topic, str):
            attributes[MESSAGING_DESTINATION_NAME] = topic
            if len(places) == 1:
                _message_attributes(attributes, next(iter(places))[1], None, None, b"", None, config.dup)
                attributes.pop(MESSAGING_MESSAGE_BODY_SIZE, None)
        attributes[MESSAGING_BATCH_MESSAGE_COUNT] = count
        _client_attributes(attributes, client, config.dup)
        name = f"poll {topic}" if isinstance(topic, str) and topic else "poll"
        span = _state.tracer.start_known_span(name, None, SpanKind.CLIENT, attributes, links, start)
        if errors:
            _record_error(span, errors[0], None)
        span.end()
    except Exception as exc:
        report(consumer.integration, exc)


def _before_receive(instance: Any) -> int:
    """A receive call starts: open process spans (this context's, this consumer's) end; the start time."""
    if _open.get() is not None or _by_consumer:
        _end_open()
        _end_open(id(instance))
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
        _end_open(id(instance))
        _batches.pop(id(instance), None)
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


# --------------------------------------------------------------------------- explicit scope


def _origin(record: Any) -> Client:
    for batch in list(_batches.values()):
        found = batch.get(id(record))
        if found is not None and found[0] is record:
            return found[1]
    return Client()


@contextlib.contextmanager
def process(record: Any) -> Iterator[trace.Span]:
    """Process ``record`` inside the block: a ``process {topic}`` span, current, ended on exit.

    See :func:`tracekit.kafka.process`.
    """
    config = _active()
    scope = None
    span: trace.Span = trace.INVALID_SPAN
    if config is not None:
        try:
            open_scope = _open.get()
            if open_scope is not None and open_scope.record is record and not open_scope.ended:
                _open.set(None)
                if _by_consumer.get(open_scope.owner) is open_scope:
                    del _by_consumer[open_scope.owner]
                scope = open_scope
            else:
                _end_open()
                current_span, current = _process_span(config, _Record(record), _origin(record))
                token = otel_context.attach(current)
                scope = _Scope("kafka", current_span, current, token, 0, record)
            span = scope.span
        except Exception as exc:
            report("kafka", exc)
    try:
        yield span
    except BaseException as exc:
        if scope is not None and isinstance(exc, Exception):
            try:
                _record_error(scope.span, qualified_name(type(exc)), exc)
            except Exception as internal:
                report("kafka", internal)
        raise
    finally:
        if scope is not None:
            try:
                scope.end()
            except Exception as exc:
                report("kafka", exc)
