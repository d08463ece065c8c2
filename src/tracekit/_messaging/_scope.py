"""Process spans and their scopes: a consumed record made current for the application.

A receive call opens a record's scope (see :mod:`tracekit._messaging._consume`), and the next
receive, a close, or :func:`process` ends it; :func:`process` also scopes a batch's records.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind

from tracekit import _state
from tracekit._messaging._attributes import (
    client_attributes,
    message_attributes,
    operation_attributes,
    record_error,
)
from tracekit._messaging._carrier import HEADERS
from tracekit._messaging._common import Attributes, Client, Config, active_config, restore_context
from tracekit._safety import report
from tracekit._semconv import MESSAGING_DESTINATION_NAME, qualified_name

__all__ = [
    "BATCHES",
    "OPEN_SCOPE",
    "SCOPES_BY_CONSUMER",
    "Record",
    "Scope",
    "end_open_scope",
    "process",
    "process_span",
    "record_field",
]


def record_field(record: Any, name: str) -> Any:
    """A record field: an attribute (kafka-python, aiokafka) or a method (confluent-kafka)."""
    value = getattr(record, name, None)
    return value() if callable(value) else value


class Record:
    """What a span needs from a consumed record, read once."""

    __slots__ = ("headers", "key", "offset", "partition", "size", "topic", "value")

    def __init__(self, record: Any) -> None:
        self.topic = record_field(record, "topic")
        self.partition = record_field(record, "partition")
        self.offset = record_field(record, "offset")
        self.key = record_field(record, "key")
        self.value = record_field(record, "value")
        self.headers = record_field(record, "headers")
        self.size = getattr(record, "serialized_value_size", None)

    def creation(self, config: Config) -> trace.SpanContext:
        """The producer's span context carried in the headers (invalid when there is none)."""
        if not self.headers:
            return trace.INVALID_SPAN_CONTEXT
        extracted = config.extract(self.headers, Context(), HEADERS)
        return trace.get_current_span(extracted).get_span_context()


class Scope:
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
            restore_context(self.token)


#: The automatic process scope open in this context, if any.
OPEN_SCOPE: ContextVar[Scope | None] = ContextVar("tracekit.messaging.open", default=None)
#: Each consumer's open automatic process scope, wherever it was opened (a task of its own
#: under asyncio.wait_for, say): the consumer's next receive or close ends it all the same.
SCOPES_BY_CONSUMER: dict[int, Scope] = {}

#: Records of each consumer's latest batch, so that process(record) knows their consumer.
BATCHES: dict[int, dict[int, tuple[Any, Client]]] = {}


def end_open_scope(owner: int | None = None) -> None:
    """End the scope open in this context (only if it is ``owner``'s) and ``owner``'s own."""
    scope = OPEN_SCOPE.get()
    if scope is not None and (owner is None or scope.owner == owner):
        OPEN_SCOPE.set(None)
        _end(scope)
    if owner is not None:
        scope = SCOPES_BY_CONSUMER.pop(owner, None)
        if scope is not None:
            _end(scope)


def _end(scope: Scope) -> None:
    try:
        scope.end()
    except Exception as exc:
        report(scope.integration, exc)


def process_span(config: Config, record: Record, client: Client) -> tuple[trace.Span, Context]:
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
    dropped = _state.tracer.dropped_child(parent)
    if dropped is not None:
        return dropped, trace.set_span_in_context(dropped, parent)
    attributes: Attributes = {}
    operation_attributes(attributes, "process", "process", "process", config.dup)
    topic = record.topic
    if isinstance(topic, str):
        attributes[MESSAGING_DESTINATION_NAME] = topic
    message_attributes(
        attributes, record.partition, record.offset, record.key, record.value, record.size, config.dup
    )
    client_attributes(attributes, client, config.dup)
    name = f"process {topic}" if isinstance(topic, str) and topic else "process"
    span = _state.tracer.start_known_span(name, parent, SpanKind.CONSUMER, attributes, links)
    return span, trace.set_span_in_context(span, parent)


def _origin(record: Any) -> Client:
    for batch in list(BATCHES.values()):
        found = batch.get(id(record))
        if found is not None and found[0] is record:
            return found[1]
    return Client()


@contextlib.contextmanager
def process(record: Any) -> Iterator[trace.Span]:
    """Process ``record`` inside the block: a ``process {topic}`` span, current, ended on exit.

    See :func:`tracekit.kafka.process`.
    """
    config = active_config()
    scope = None
    span: trace.Span = trace.INVALID_SPAN
    if config is not None:
        try:
            open_scope = OPEN_SCOPE.get()
            if open_scope is not None and open_scope.record is record and not open_scope.ended:
                OPEN_SCOPE.set(None)
                if SCOPES_BY_CONSUMER.get(open_scope.owner) is open_scope:
                    del SCOPES_BY_CONSUMER[open_scope.owner]
                scope = open_scope
            else:
                end_open_scope()
                current_span, current = process_span(config, Record(record), _origin(record))
                token = otel_context.attach(current)
                scope = Scope("kafka", current_span, current, token, 0, record)
            span = scope.span
        except Exception as exc:
            report("kafka", exc)
    try:
        yield span
    except BaseException as exc:
        if scope is not None and isinstance(exc, Exception):
            try:
                record_error(scope.span, qualified_name(type(exc)), exc)
            except Exception as internal:
                report("kafka", internal)
        raise
    finally:
        if scope is not None:
            try:
                scope.end()
            except Exception as exc:
                report("kafka", exc)
