"""Send spans: ``send {topic}``, kind PRODUCER, from the send call until the delivery report.

The configured propagators' headers go into a copy of the record's headers; the library's
delivery report reaches the span through a :class:`Delivery`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind

from tracekit import _state
from tracekit._context import current_context
from tracekit._messaging._attributes import (
    client_attributes,
    message_attributes,
    operation_attributes,
    record_error,
)
from tracekit._messaging._carrier import HEADERS, with_context
from tracekit._messaging._common import (
    Args,
    Attributes,
    Config,
    Kwargs,
    Producer,
    client_of,
    configuration_for,
    restore_context,
)
from tracekit._safety import report
from tracekit._semconv import MESSAGING_DESTINATION_NAME, MESSAGING_MESSAGE_BODY_SIZE, qualified_name
from tracekit._suppression import SUPPRESS_INSTRUMENTATION_KEY

__all__ = ["Delivery", "async_send", "bind_arg", "rebind_arg", "send"]

# Bound once: the per-record paths read module globals, not attribute chains.
_get_current = current_context
_set_span_in_context = trace.set_span_in_context
_PRODUCER = SpanKind.PRODUCER


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
    message_attributes(attributes, partition, offset, None, b"", size, dup)
    if not (isinstance(size, int) and size >= 0):
        del attributes[MESSAGING_MESSAGE_BODY_SIZE]
    return attributes


class Delivery:
    """One record being sent: its span, from the send call until the delivery report."""

    __slots__ = ("args", "config", "context", "ended", "integration", "kwargs", "span", "token", "watched")

    def __init__(
        self,
        integration: str,
        config: Config,
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
        #: ``False`` for a record sent in an unsampled trace with no span of its own: the
        #: call is made with the injected headers, and nothing waits for its delivery.
        self.watched = True

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
            record_error(self.span, error_type, exc, message)
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
        restore_context(self.token)
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
        config = configuration_for(current)
        if config is None:
            return None
        params = producer.params
        bound = dict(zip(params, args, strict=False))  # extra positionals: the library raises
        bound.update(kwargs)
        headers = bound.get("headers")
        span = _state.tracer.dropped_child(parent)
        dropped = span is not None
        if span is None:
            span = _send_span(producer, config, instance, bound, parent)
            context = _set_span_in_context(span, parent)
        else:
            context = parent
        carrier: dict[str, str] = {}
        config.inject_span(carrier, span, parent)
        if carrier:
            copied = with_context(headers, carrier, config.fields)
            if copied is not None:
                args, kwargs = rebind_arg(params, args, kwargs, "headers", copied)
        delivery = Delivery(producer.integration, config, span, context, args, kwargs)
        if dropped:
            delivery.watched = False
        elif producer.prepare is not None:
            delivery.args, delivery.kwargs = producer.prepare(instance, delivery, args, kwargs)
        return delivery
    except Exception as exc:
        report(producer.integration, exc)
        if span is not None:
            span.end()
        return None


def _send_span(
    producer: Producer, config: Config, instance: Any, bound: dict[str, Any], parent: Context
) -> trace.Span:
    """The PRODUCER span of a send, with its attributes and its link to a context the message carried."""
    topic = bound.get("topic")
    headers = bound.get("headers")
    attributes: Attributes = {}
    operation_attributes(attributes, "send", "send", "publish", config.dup)
    if isinstance(topic, str):
        attributes[MESSAGING_DESTINATION_NAME] = topic
    message_attributes(
        attributes, bound.get("partition"), None, bound.get("key"), bound.get("value"), None, config.dup
    )
    client_attributes(attributes, client_of(instance, producer.client), config.dup)
    links = None
    if headers is not None and config.fields:
        origin = trace.get_current_span(config.extract(headers, Context(), HEADERS)).get_span_context()
        if origin.is_valid:
            links = [Link(origin)]
    name = f"send {topic}" if isinstance(topic, str) and topic else "send"
    # The context read by the caller is the parent: the SDK need not look it up again.
    return _state.tracer.start_known_span(name, parent, _PRODUCER, attributes, links)


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
        if not delivery.watched:
            return wrapped(*delivery.args, **delivery.kwargs)
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
        if not delivery.watched:
            return await wrapped(*delivery.args, **delivery.kwargs)
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
