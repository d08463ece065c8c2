"""payment-api (Flask): authorizes a charge with the bank.

A legacy service: it speaks B3 only (``OTEL_PROPAGATORS=b3multi``), so its callers must send
B3 headers as well as W3C ``traceparent`` for the trace to continue. The bank is faked by a
route of this same application, called over httpx like a real one::

    OTEL_SERVICE_NAME=payment-api OTEL_PROPAGATORS=b3multi PORT=8001 tracekit run python payment_api.py

A cart called ``slow`` makes the bank take 0.6 s; a cart called ``fail`` makes it answer 502.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from typing import Any

import httpx
from common import setup_logging
from flask import Flask, request

log = setup_logging("payment")
logging.getLogger("werkzeug").setLevel(logging.WARNING)

PORT = int(os.environ.get("PORT", "8001"))
BANK_URL = os.environ.get("BANK_URL", f"http://127.0.0.1:{PORT}/bank/v1/charges")
SLOW_BANK_SECONDS = 0.6

app = Flask(__name__)
bank = httpx.Client(timeout=10)


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/authorize/<order_id>")
def authorize(order_id: str) -> Any:
    payment = request.get_json()
    log.info("authorizing %.2f EUR for order %s", payment["amount"], order_id)
    answer = bank.post(BANK_URL, json={"reference": order_id, **payment})
    if answer.status_code >= 500:
        log.error("bank answered %s for order %s: %s", answer.status_code, order_id, answer.json()["error"])
        return {"error": f"bank unavailable ({answer.status_code})"}, 502
    return {"authorization_id": answer.json()["authorization_id"]}


@app.post("/bank/v1/charges")
def bank_charge() -> Any:
    charge = request.get_json()
    if charge["cart_id"] == "slow":
        log.warning("bank is slow today (%.1f s)", SLOW_BANK_SECONDS)
        time.sleep(SLOW_BANK_SECONDS)
    if charge["cart_id"] == "fail":
        log.error("bank: card network unreachable")
        return {"error": "card network unreachable"}, 502
    return {"authorization_id": "auth-" + uuid.uuid4().hex[:8]}


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=PORT, threaded=True)
