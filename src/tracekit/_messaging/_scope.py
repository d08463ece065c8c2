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
    _client_attributes,
    _message_attributes,
    _operation,
    _record_error,
)
from tracekit._messaging._carrier import HEADERS
from tracekit._messaging._common import Attributes, Client, _active, _Config, _restore
from tracekit._safety import report
from tracekit._semconv import MESSAGING_DESTINATION_NAME, qualified_name


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
