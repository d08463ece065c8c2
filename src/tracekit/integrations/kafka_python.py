"""kafka-python: ``send {topic}`` for ``KafkaProducer.send``; ``process`` and ``poll`` spans for consumers.

The send span ends when the returned future resolves (the broker's acknowledgement or
the failure). Iterating a consumer hands records out one at a time (a process span each);
``poll()`` returns a batch (one ``poll`` span linking to every record's producer). The
shared logic is in :mod:`tracekit._messaging`.
"""

from __future__ import annotations

from typing import Any

from tracekit import _messaging
from tracekit._messaging import Client, Delivery
from tracekit._patch import Patches, Plain

__all__ = ["patch", "patches", "unpatch"]


def _client(instance: Any) -> Client:
    config = instance.config
    address, port = _messaging.split_servers(config.get("bootstrap_servers"))
    return Client(config.get("client_id"), config.get("group_id"), address, port)


def _watch(future: Any, delivery: Delivery) -> None:
    future.add_callback(
        lambda metadata: delivery.delivered(
            metadata.partition, metadata.offset, getattr(metadata, "serialized_value_size", None)
        )
    )
    future.add_errback(lambda exc: delivery.raised(exc))


PRODUCER = _messaging.Producer(
    "kafka_python",
    ("topic", "value", "key", "headers", "partition", "timestamp_ms"),
    _client,
    watch=_watch,
)
CONSUMER = _messaging.Consumer("kafka_python", _client)

patches = Patches(
    "kafka_python",
    {
        "kafka": [
            ("KafkaProducer.send", Plain(_messaging.send(PRODUCER))),
            ("KafkaConsumer.__next__", Plain(_messaging.receive_one(CONSUMER))),
            ("KafkaConsumer.poll", Plain(_messaging.receive_batch(CONSUMER))),
            ("KafkaConsumer.close", Plain(_messaging.closing(CONSUMER))),
        ]
    },
)
patch = patches.apply
unpatch = patches.revert
