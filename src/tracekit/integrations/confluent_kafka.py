"""confluent-kafka: ``send {topic}`` for ``Producer.produce``, ``process`` / ``poll`` spans for ``Consumer``.

``Producer`` and ``Consumer`` are C types whose methods cannot be wrapped in place: while
the integration is patched, ``confluent_kafka.Producer`` and ``confluent_kafka.Consumer``
are tracing subclasses, so objects made from them after patching are traced (import
tracekit and configure it before ``from confluent_kafka import Producer``; a warning names
modules that took the classes earlier). ``SerializingProducer`` and
``DeserializingConsumer`` are Python classes and are wrapped in place.

The send span ends in the delivery report: tracekit passes its own ``on_delivery`` callback,
which records the outcome and then calls the application's (per-message, else the one in
the configuration) with the original arguments. With ``delivery.report.only.error`` the
send span ends when ``produce`` returns. ``poll`` hands out one record (a process span);
``consume`` returns a batch (one ``poll`` span); error messages make ERROR ``poll`` spans
with ``error.type`` the Kafka error name. The shared logic is in :mod:`tracekit._messaging`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from tracekit import _messaging, _state
from tracekit._logging import warn_once
from tracekit._messaging import Args, Client, Delivery, Kwargs
from tracekit._patch import Patches, Replace
from tracekit._semconv import qualified_name

__all__ = ["patch", "patches", "unpatch"]

NAME = "confluent_kafka"
_CONF = "_tracekit_conf"
_REPORTS = "_tracekit_reports"  # marks tracekit's delivery callback
_PARTITION_EOF = -191  # KafkaError._PARTITION_EOF: an event, not an error


def _remember_conf(instance: Any, args: Args, kwargs: Kwargs) -> None:
    conf: dict[str, Any] = {}
    if args and isinstance(args[0], dict):
        conf.update(args[0])
    conf.update(kwargs)
    vars(instance)[_CONF] = conf


def _conf(instance: Any) -> dict[str, Any]:
    return getattr(instance, "__dict__", {}).get(_CONF) or {}


def _client(instance: Any) -> Client:
    conf = _conf(instance)
    address, port = _messaging.split_servers(conf.get("bootstrap.servers"))
    return Client(conf.get("client.id"), conf.get("group.id"), address, port)


def _error_name(error: Any) -> str | None:
    name = getattr(error, "name", None)
    return str(name()) if callable(name) else None


def _error_type(exc: BaseException) -> str:
    return (exc.args and _error_name(exc.args[0])) or qualified_name(type(exc))


def _error_of(message: Any) -> str | None:
    error = message.error()
    if error is None:
        return None
    if error.code() == _PARTITION_EOF:
        return ""
    return _error_name(error) or "_OTHER"


def _prepare(params: tuple[str, ...]) -> Callable[[Any, Delivery, Args, Kwargs], tuple[Args, Kwargs]]:
    def prepare(instance: Any, delivery: Delivery, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
        conf = _conf(instance)
        if conf.get("delivery.report.only.error") in (True, "true", "True"):
            return args, kwargs
        kwargs = dict(kwargs)
        callback = _messaging.bind_arg(params, args, kwargs, "on_delivery") or kwargs.pop("callback", None)
        if callback is None:
            callback = conf.get("on_delivery")

        def on_delivery(error: Any, message: Any) -> None:
            if error is None:
                value = message.value()
                size = len(value) if isinstance(value, (bytes, str)) else None
                delivery.delivered(message.partition(), message.offset(), size)
            else:
                delivery.failed(_error_name(error) or "_OTHER", message=error.str())
            if callback is not None:
                callback(error, message)

        setattr(on_delivery, _REPORTS, True)
        return _messaging.rebind_arg(params, args, kwargs, "on_delivery", on_delivery)

    return prepare


def _watch(params: tuple[str, ...]) -> Callable[[Any, Delivery], None]:
    def watch(result: Any, delivery: Delivery) -> None:
        callback = _messaging.bind_arg(params, delivery.args, delivery.kwargs, "on_delivery")
        if not getattr(callback, _REPORTS, False):
            delivery.delivered()  # delivery.report.only.error: no report for a success

    return watch


_PRODUCE = ("topic", "value", "key", "partition", "on_delivery", "timestamp", "headers")
_SERIALIZING_PRODUCE = ("topic", "key", "value", "partition", "on_delivery", "timestamp", "headers")
PRODUCER = _messaging.Producer(NAME, _PRODUCE, _client, watch=_watch(_PRODUCE), prepare=_prepare(_PRODUCE))
SERIALIZING_PRODUCER = _messaging.Producer(
    NAME,
    _SERIALIZING_PRODUCE,
    _client,
    watch=_watch(_SERIALIZING_PRODUCE),
    prepare=_prepare(_SERIALIZING_PRODUCE),
)
CONSUMER = _messaging.Consumer(NAME, _client, error_of=_error_of, error_type=_error_type)

_send = _messaging.send(PRODUCER)
_poll = _messaging.receive_one(CONSUMER)
_consume = _messaging.receive_batch(CONSUMER)
_close = _messaging.closing(CONSUMER)


def _traced() -> bool:
    return NAME in _state.wanted_integrations


def _producer(original: type) -> type:
    class Producer(original):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            _remember_conf(self, args, kwargs)

        def produce(self, *args: Any, **kwargs: Any) -> Any:
            if not _traced():
                return super().produce(*args, **kwargs)
            return _send(super().produce, self, args, kwargs)

    return _like(Producer, original)


def _consumer(original: type) -> type:
    class Consumer(original):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            _remember_conf(self, args, kwargs)

        def poll(self, *args: Any, **kwargs: Any) -> Any:
            if not _traced():
                return super().poll(*args, **kwargs)
            return _poll(super().poll, self, args, kwargs)

        def consume(self, *args: Any, **kwargs: Any) -> Any:
            if not _traced():
                return super().consume(*args, **kwargs)
            return _consume(super().consume, self, args, kwargs)

        def close(self, *args: Any, **kwargs: Any) -> Any:
            return _close(super().close, self, args, kwargs)

    return _like(Consumer, original)


def _like(replacement: type, original: type) -> type:
    replacement.__module__ = "confluent_kafka"
    replacement.__qualname__ = original.__qualname__
    replacement.__doc__ = original.__doc__
    return replacement


def _init(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    result = wrapped(*args, **kwargs)
    _remember_conf(instance, args, kwargs)
    return result


patches = Patches(
    NAME,
    {
        "confluent_kafka": [
            ("Producer", Replace(_producer)),
            ("Consumer", Replace(_consumer)),
            ("SerializingProducer.__init__", _init),
            ("SerializingProducer.produce", _messaging.send(SERIALIZING_PRODUCER)),
            ("DeserializingConsumer.__init__", _init),
            ("DeserializingConsumer.poll", _messaging.receive_one(CONSUMER)),
            ("DeserializingConsumer.close", _close),
        ]
    },
)


def patch(module: ModuleType) -> bool:
    """Patch ``confluent_kafka``; warn about modules holding the classes from before."""
    originals = {id(module.Producer): "Producer", id(module.Consumer): "Consumer"}
    applied = patches.apply(module)
    if applied:
        _warn_about_earlier_references(originals)
    return applied


unpatch = patches.revert


def _warn_about_earlier_references(originals: dict[int, str]) -> None:
    holders = []
    for name, module in list(sys.modules.items()):
        # The library itself, tracekit and OpenTelemetry's own instrumentation hold them legitimately.
        if module is None or name.startswith(("confluent_kafka", "tracekit", "opentelemetry.")):
            continue
        try:
            found = [
                f"{name}.{attribute}"
                for attribute, value in list(vars(module).items())
                if id(value) in originals
            ]
        except TypeError:
            continue
        holders.extend(found)
    if holders:
        warn_once(
            "confluent_kafka:early-reference",
            "tracekit: %s took confluent_kafka's Producer or Consumer class before tracekit patched it; "
            "producers and consumers made from that reference are not traced (configure tracekit, or "
            "instrument confluent_kafka, before importing it)",
            ", ".join(sorted(holders)),
        )
