"""aiokafka: ``send {topic}`` for ``AIOKafkaProducer.send`` (and so ``send_and_wait``),
``process`` spans for ``getone`` and ``async for``, ``poll`` spans for ``getmany``.

The send span ends when the delivery future is done. The shared logic is in
:mod:`tracekit._messaging`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tracekit import _messaging
from tracekit._messaging import Client, Delivery
from tracekit._patch import Patches

__all__ = ["patch", "patches", "unpatch"]


def _client(instance: Any) -> Client:
    client = getattr(instance, "client", None) or instance._client
    address, port = _messaging.split_servers(client._bootstrap_servers)
    return Client(client._client_id, getattr(instance, "_group_id", None), address, port)


def _watch(future: Any, delivery: Delivery) -> None:
    def done(future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            delivery.failed("_OTHER", message="the delivery future was cancelled")
            return
        exc = future.exception()
        if exc is not None:
            delivery.raised(exc)
            return
        metadata = future.result()
        delivery.delivered(metadata.partition, metadata.offset)

    future.add_done_callback(done)


PRODUCER = _messaging.Producer(
    "aiokafka",
    ("topic", "value", "key", "partition", "timestamp_ms", "headers"),
    _client,
    watch=_watch,
)
CONSUMER = _messaging.Consumer("aiokafka", _client)

patches = Patches(
    "aiokafka",
    {
        "aiokafka": [
            ("AIOKafkaProducer.send", _messaging.async_send(PRODUCER)),
            ("AIOKafkaConsumer.getone", _messaging.async_receive_one(CONSUMER)),
            ("AIOKafkaConsumer.getmany", _messaging.receive_batch(CONSUMER, is_async=True)),
            ("AIOKafkaConsumer.stop", _messaging.closing(CONSUMER, is_async=True)),
        ]
    },
)
patch = patches.apply
unpatch = patches.revert
