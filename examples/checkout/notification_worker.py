"""notification-worker: consumes ``order.created`` and records the confirmation to send.

    OTEL_SERVICE_NAME=notification-worker KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 \
        tracekit run python notification_worker.py

The producer's trace continues here: the ``process order.created`` span is a child of
checkout-api's ``send order.created`` span, carried in the record's headers.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from common import connect, setup_logging, sql

import tracekit

log = setup_logging("notifications")

KAFKA_BOOTSTRAP_SERVERS = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
TOPIC = "order.created"


@tracekit.traced(record_args=("order_id",))
def queue_confirmation(db: Any, order_id: str, body: str) -> None:
    db.execute(
        sql("INSERT INTO notifications (order_id, channel, body) VALUES (%s, 'email', %s)"), (order_id, body)
    )


async def consume(consumer: AIOKafkaConsumer, db: Any) -> None:
    async for record in consumer:
        order = json.loads(record.value)
        body = f"Order {order['order_id']} is confirmed: {order['amount']:.2f} EUR"
        queue_confirmation(db, order["order_id"], body)
        log.info("confirmation for order %s queued", order["order_id"])


async def main() -> None:
    db = connect()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=KAFKA_BOOTSTRAP_SERVERS,
        client_id="notification-worker",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    consumer.assign([TopicPartition(TOPIC, 0)])
    await consumer.seek_to_beginning()
    log.info("notification-worker ready, consuming %s", TOPIC)
    task = asyncio.ensure_future(consume(consumer, db))
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        await consumer.stop()
        db.close()


if __name__ == "__main__":
    asyncio.run(main())
