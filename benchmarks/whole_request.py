"""A whole request: a FastAPI endpoint that calls two HTTP services, queries twice and sends to Kafka.

``unsampled-request`` measures what the instrumentation adds to a request whose trace the
caller did not sample (issue 21): every request carries a ``traceparent`` with the sampled
flag off and a trace id of its own, so under parent-based sampling (tracekit's default
``parentbased_traceidratio``, the SDK's ``ParentBased``) nothing in it is recorded, yet the
context must still reach the downstream calls. One request is:

* the SERVER side: FastAPI driven in process over ASGI, as in ``benchmarks.http_servers``;
* two GETs with ``httpx.AsyncClient`` (the endpoint is ``async def``) to the local server of
  ``benchmarks.http_clients`` on 127.0.0.1, which echoes in a header the ``traceparent`` it
  received;
* two ``SELECT ?`` queries on an in-memory sqlite3 database, as in ``benchmarks.databases``;
* one ``Producer.produce()`` with confluent-kafka to the local broker of ``benchmarks.kafka``,
  each timed batch of requests ending with ``flush()`` as in that family.

The endpoint checks each echoed ``traceparent``: none in the bare variant; on the
instrumented sides the request's trace id with the flags ``00``. A missing or sampled
context fails the variant, and so does any span exported during its rounds (there must be
none), so the rows measure the unsampled path and nothing else.

tracekit's integrations (fastapi, httpx, sqlite3, confluent_kafka) are switched on with
``tracekit.instrument()`` before a variant's app, client, connection and producer are made,
and off after its round; the peer's contrib instrumentors are instrumented with a separate
SDK provider (``FastAPIInstrumentor.instrument_app`` on its app) and uninstrumented the same
way, injecting with OpenTelemetry's default propagator.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any
from urllib.parse import urljoin

from benchmarks import databases, kafka
from benchmarks._common import Pipeline, counted, peer_provider, tracekit_configured, tracekit_integration
from benchmarks._harness import Batch, Benchmark, Scale, Session, Variant
from benchmarks._http_server import ECHO_HEADER, ECHO_PATH
from benchmarks.http_clients import local_server
from benchmarks.http_servers import (
    NO_NATIVE_TELEMETRY,
    ASGIExchange,
    asgi_scope,
    peer_propagation,
    tracekit_server,
)

__all__ = ["benchmarks"]

#: tracekit's default sampler (``tracekit_configured`` otherwise uses ``parentbased_always_on``).
TRACEKIT_SAMPLER = "parentbased_traceidratio"
HTTP_CALLS = 2
QUERIES = 2
KAFKA_SENDS = 1

App = Any
Switch = Callable[[], AbstractContextManager[object]]


class _Handles:
    """What one variant's endpoint uses, made after its instrumentation is switched on."""

    def __init__(self, echo_url: str, bootstrap: str, propagated: bool) -> None:
        import httpx

        self.echo_url = echo_url
        self.propagated = propagated
        #: The ``traceparent`` of the request being served.
        self.incoming = ""
        self.client = httpx.AsyncClient(trust_env=False)
        self.sqlite = databases.sqlite3_client()
        self.connection = self.sqlite.connect()
        self.kafka = kafka.confluent_kafka_client()
        self.producer = self.kafka.open(bootstrap)


def _check(echoed: str, incoming: str, propagated: bool) -> None:
    """``echoed`` (what the server received) is the unsampled context of ``incoming``, or absent."""
    if propagated:
        ok = echoed[:36] == incoming[:36] and echoed.endswith("-00") and len(echoed) == 55
    else:
        ok = echoed == "none"
    if not ok:
        expected = f"trace id {incoming[3:35]}, flags 00" if propagated else "none"
        raise RuntimeError(f"outgoing traceparent {echoed!r}, expected {expected} (incoming {incoming!r})")


def _close_producer(client: kafka.Client, producer: Any) -> None:
    """Close ``producer`` now: left to the garbage collector, confluent-kafka producers were
    never freed here, and their librdkafka threads went on spending CPU in later rounds."""
    close = getattr(producer, "close", None)
    if close is not None:
        close()
    else:
        client.close(producer)


def _app(handles: _Handles) -> App:
    from fastapi import FastAPI

    try:
        app = FastAPI(telemetry=NO_NATIVE_TELEMETRY)  # type: ignore[typeddict-item, arg-type, unused-ignore]
    except TypeError:  # a FastAPI without native telemetry
        app = FastAPI()

    client, url, propagated = handles.client, handles.echo_url, handles.propagated
    connection, query = handles.connection, handles.sqlite.query
    producer, send = handles.producer, handles.kafka.send

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, Any]:
        incoming = handles.incoming
        for _ in range(HTTP_CALLS):
            response = await client.get(url)
            response.raise_for_status()
            _check(response.headers[ECHO_HEADER], incoming, propagated)
        for _ in range(QUERIES):
            query(connection)
        for _ in range(KAFKA_SENDS):
            send(producer)
        return {"id": order_id, "status": "accepted"}

    return app


def _scope() -> dict[str, Any]:
    scope = asgi_scope()
    scope["path"] = "/orders/42"
    scope["raw_path"] = b"/orders/42"
    return scope


def _batch(app: App, handles: _Handles, loop: asyncio.AbstractEventLoop) -> Batch:
    base = _scope()
    headers = base.pop("headers")
    bits = random.Random(21).getrandbits

    async def requests(n: int) -> None:
        for _ in range(n):
            # A new trace for every request, unsampled by its caller.
            traceparent = f"00-{bits(128) | 1:032x}-{bits(64) | 1:016x}-00"
            handles.incoming = traceparent
            exchange = ASGIExchange()
            scope = dict(base)
            scope["headers"] = [*headers, (b"traceparent", traceparent.encode("ascii"))]
            await app(scope, exchange.receive, exchange.send)
            if exchange.status != 200:
                raise RuntimeError(f"unexpected status {exchange.status}")

    def batch(n: int) -> None:
        loop.run_until_complete(requests(n))
        handles.kafka.flush(handles.producer)

    return batch


def _session(
    echo_url: str,
    bootstrap: str,
    switch: Switch | None,
    instrument_app: Callable[[App], object] | None,
    pipeline: Pipeline | None,
) -> Session:
    """A round's session: ``switch`` on, a fresh loop, client, connection, producer and app."""

    @contextmanager
    def session() -> Iterator[Batch]:
        with ExitStack() as stack:
            if switch is not None:
                stack.enter_context(switch())
            loop = asyncio.new_event_loop()
            stack.callback(loop.close)
            handles = _Handles(echo_url, bootstrap, propagated=switch is not None)
            stack.callback(lambda: loop.run_until_complete(handles.client.aclose()))
            stack.callback(handles.sqlite.close, handles.connection)
            stack.callback(_close_producer, handles.kafka, handles.producer)
            app = _app(handles)
            if instrument_app is not None:
                instrument_app(app)
            batch = _batch(app, handles, loop)
            if pipeline is None:
                yield batch
            else:
                # Nothing in an unsampled trace may be exported.
                yield stack.enter_context(counted(batch, pipeline, spans_per_operation=0))

    return session


def _tracekit_switch() -> Switch:
    server = tracekit_server(("fastapi", "starlette", "asgi"))

    @contextmanager
    def switch() -> Iterator[None]:
        with ExitStack() as stack:
            stack.enter_context(server())
            for name in ("httpx", "sqlite3", "confluent_kafka"):
                stack.enter_context(tracekit_integration(name))
            yield

    return switch


def _peer_switch(provider: Any) -> Switch:
    from opentelemetry.instrumentation.confluent_kafka import ConfluentKafkaInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor

    @contextmanager
    def switch() -> Iterator[None]:
        with ExitStack() as stack:
            for instrumentor in (
                HTTPXClientInstrumentor(),
                SQLite3Instrumentor(),
                ConfluentKafkaInstrumentor(),
            ):
                instrumentor.instrument(tracer_provider=provider)
                stack.callback(instrumentor.uninstrument)
            stack.enter_context(peer_propagation())
            yield

    return switch


@contextmanager
def _unsampled() -> Iterator[Sequence[Variant]]:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    with ExitStack() as stack:
        echo_url = urljoin(stack.enter_context(local_server()), ECHO_PATH)
        bootstrap = stack.enter_context(kafka.local_broker())
        warm = kafka.confluent_kafka_client()
        producer = warm.open(bootstrap)  # creates the topic before any timed round
        warm.send(producer)
        warm.flush(producer)
        _close_producer(warm, producer)
        tracekit_pipeline = stack.enter_context(tracekit_configured(sampler=TRACEKIT_SAMPLER))
        provider, peer_pipeline = stack.enter_context(peer_provider("batch"))

        def instrument_app(app: App) -> None:
            FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)

        yield [
            Variant("bare", "bare", _session(echo_url, bootstrap, None, None, None)),
            Variant(
                "tracekit (fastapi, httpx, sqlite3, confluent_kafka)",
                "tracekit",
                _session(echo_url, bootstrap, _tracekit_switch(), None, tracekit_pipeline),
            ),
            Variant(
                "opentelemetry-instrumentation-fastapi, -httpx, -sqlite3, -confluent-kafka",
                "peer",
                _session(echo_url, bootstrap, _peer_switch(provider), instrument_app, peer_pipeline),
            ),
        ]


def benchmarks(scale: Scale) -> list[Benchmark]:
    return [
        Benchmark(
            name="unsampled-request",
            family="whole-request",
            title="A whole request in an unsampled trace",
            description="GET `/orders/42` with a `traceparent` whose sampled flag is off (a new trace id "
            "each request) to a FastAPI `async def` endpoint driven in process over ASGI, which makes "
            f"{HTTP_CALLS} `httpx.AsyncClient` GETs to a keep-alive server on 127.0.0.1, {QUERIES} "
            f"sqlite3 `SELECT ?` queries in memory and {KAFKA_SENDS} confluent-kafka `produce()` of a "
            "100-byte record to a local broker "
            "(each batch of requests ends with `flush()`). Both sides sample parent-based "
            f"(tracekit `{TRACEKIT_SAMPLER}`, its default; the SDK `ParentBased(ALWAYS_ON)`), "
            "so no span is recorded or exported (every round checks that none was), and the endpoint "
            "checks that both HTTP calls carried the request's trace id with the flags `00`. The "
            "server and the broker run in other processes, so the CPU time is this process's alone "
            "(the producer's threads included). A request's CPU time moves by hundreds of "
            "microseconds from round to round on a shared machine, for every variant of the round "
            "alike, hence many short rounds.",
            switching="in process; a new app, client, connection and producer each round, made after "
            "`tracekit.instrument()` of fastapi, httpx, sqlite3 and confluent_kafka (`uninstrument` after "
            "the round), or after the peer's `instrument(tracer_provider=...)` (fastapi: `instrument_app`) "
            "and `uninstrument()` after the round",
            setup=_unsampled,
            rounds=scale.rounds(41),
            iterations=scale.iterations(100),
            warmup=10,
        )
    ]
