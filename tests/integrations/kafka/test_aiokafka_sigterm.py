"""An aiokafka consumer loop stopped with SIGTERM: the spans it ended arrive, and it ends as the signal would.

The loop is the plain ``async for record in consumer`` a service runs, with no signal handling
of its own; the process is stopped the way a container runtime stops it. Its consumer group
is its own: a member killed without leaving its group stays in it until the broker's session
timeout, and would hold up other tests' consumers in a shared group.
"""

from __future__ import annotations

import signal
import sys
import textwrap
import time
from pathlib import Path

from kafkacheck import Broker

from launcher_support import environment, started, wait_for_line
from tracekit.testing import OTLPReceiver

CONSUMER = """
    import asyncio, os
    import tracekit
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    tracekit.configure()
    BOOTSTRAP, TOPIC = os.environ["BOOTSTRAP"], os.environ["TOPIC"]

    async def main():
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
        await producer.start()
        for number in range(3):
            await producer.send_and_wait(TOPIC, f"order-{number}".encode())
        await producer.stop()
        consumer = AIOKafkaConsumer(
            TOPIC, bootstrap_servers=BOOTSTRAP, group_id=f"{TOPIC}-sigterm", auto_offset_reset="earliest"
        )
        await consumer.start()
        handled = 0
        async for record in consumer:
            handled += 1
            if handled == 3:
                print("ready", flush=True)

    asyncio.run(main())
"""


def test_a_consumer_loop_stopped_with_sigterm(
    broker: Broker, topic: str, receiver: OTLPReceiver, tmp_path: Path
) -> None:
    path = tmp_path / "consumer.py"
    path.write_text(textwrap.dedent(CONSUMER))
    env = environment(receiver, OTEL_BSP_SCHEDULE_DELAY="60000", BOOTSTRAP=broker.bootstrap, TOPIC=topic)
    with started([sys.executable, str(path)], env, tmp_path, stdout=True) as process:
        wait_for_line(process, "ready")
        time.sleep(0.2)  # the loop now waits for a fourth record, the third one's span ended
        assert receiver.spans == []  # nothing left the process before the signal
        process.send_signal(signal.SIGTERM)
        status = process.wait(20)
    assert status == -signal.SIGTERM
    spans = receiver.wait_for_spans(6, timeout=5.0)
    assert sorted(span.name for span in spans) == [f"process {topic}"] * 3 + [f"send {topic}"] * 3
