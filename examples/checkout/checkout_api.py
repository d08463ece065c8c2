"""checkout-api: ``POST /checkout/{cart_id}`` reserves stock, authorizes the payment, publishes the order.

Run it under the launcher; everything about tracing comes from ``OTEL_*`` variables::

    OTEL_SERVICE_NAME=checkout-api OTEL_PROPAGATORS=tracecontext,baggage,b3multi \
    PAYMENT_API_URL=http://127.0.0.1:8001 KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 \
        tracekit run uvicorn checkout_api:app --port 8000

The database calls, the httpx call to payment-api and the Kafka send are traced by tracekit's
integrations; ``reserve_inventory`` and ``authorize_payment`` are the business steps, traced
with ``@tracekit.traced``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from common import connect, setup_logging, sql
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from opentelemetry import trace

import tracekit

log = setup_logging("checkout")

PAYMENT_API_URL = os.environ.get("PAYMENT_API_URL", "http://127.0.0.1:8001")
KAFKA_BOOTSTRAP_SERVERS = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
TOPIC = "order.created"
PRICES = {"slow": 129.0, "fail": 990.0}


class PaymentFailed(Exception):
    """payment-api could not authorize the charge."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.db = connect()
    app.state.payments = httpx.AsyncClient(base_url=PAYMENT_API_URL, timeout=10)
    app.state.producer = AIOKafkaProducer(bootstrap_servers=KAFKA_BOOTSTRAP_SERVERS, client_id="checkout-api")
    await app.state.producer.start()
    try:
        yield
    finally:
        await app.state.producer.stop()
        await app.state.payments.aclose()
        app.state.db.close()


app = FastAPI(lifespan=lifespan)


@tracekit.traced(record_args=("cart_id",))
def reserve_inventory(db: Any, order_id: str, cart_id: str) -> None:
    """Hold one espresso machine for the order (literals in the SQL are sanitized on the span)."""
    db.execute(
        sql("UPDATE inventory SET reserved = reserved + 1 WHERE sku = 'espresso-1' AND stock > reserved")
    )
    db.execute(
        sql("INSERT INTO orders (order_id, cart_id, status) VALUES (%s, %s, 'reserved')"), (order_id, cart_id)
    )


@tracekit.traced(record_args=("amount",))
async def authorize_payment(payments: httpx.AsyncClient, order_id: str, cart_id: str, amount: float) -> str:
    response = await payments.post(f"/authorize/{order_id}", json={"cart_id": cart_id, "amount": amount})
    if response.status_code >= 500:
        raise PaymentFailed(f"payment-api answered {response.status_code}: {response.json().get('error')}")
    return str(response.json()["authorization_id"])


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/checkout/{cart_id}")
async def checkout(cart_id: str) -> Any:
    trace_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
    order_id = uuid.uuid4().hex[:12]
    amount = PRICES.get(cart_id, 49.0)
    log.info("checkout of cart %s started: order %s, %.2f EUR", cart_id, order_id, amount)
    reserve_inventory(app.state.db, order_id, cart_id)
    try:
        authorization = await authorize_payment(app.state.payments, order_id, cart_id, amount)
    except PaymentFailed as exc:
        log.error("order %s not placed: %s", order_id, exc)
        body = {"order_id": order_id, "status": "payment_failed", "error": str(exc), "trace_id": trace_id}
        return JSONResponse(body, status_code=502)
    order = {"order_id": order_id, "cart_id": cart_id, "amount": amount, "authorization": authorization}
    await app.state.producer.send_and_wait(TOPIC, json.dumps(order).encode(), key=order_id.encode())
    log.info("order %s placed, authorization %s", order_id, authorization)
    return {"order_id": order_id, "status": "placed", "trace_id": trace_id}
