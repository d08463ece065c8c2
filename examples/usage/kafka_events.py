"""Kafka: one trace from the producer's ``send`` to the consumer's ``process``.

    KAFKA_BOOTSTRAP=127.0.0.1:9092 python examples/usage/kafka_events.py

The producer's span context travels in the record headers; the consumer's ``process``
span continues it, so the worker's database calls sit in the same trace as the request
that published the event.
"""

from __future__ import annotations

import os

import tracekit
import tracekit.kafka


def main() -> None:
    tracekit.configure(service_name="orders", exporters=["console"])
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    admin.create_topics([NewTopic("order.created", 1, 1)])
    admin.close()

    producer = KafkaProducer(bootstrap_servers=bootstrap)
    with tracekit.span("place_order"):
        producer.send("order.created", b'{"order": "A-1"}', key=b"A-1").get(timeout=10)
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=10000)
    consumer.assign([TopicPartition("order.created", 0)])
    consumer.seek_to_beginning()
    for record in consumer:
        with tracekit.kafka.process(record), tracekit.span("send_confirmation_email"):
            pass
        break
    consumer.close()
    tracekit.shutdown()


if __name__ == "__main__":
    main()
