"""A first look at tracekit: a checkout whose trace prints as a tree on stderr.

Run it with ``nox -s demo``. No collector is needed: the console exporter prints each
trace once its root span ends.
"""

from __future__ import annotations

import time

from opentelemetry import trace

import tracekit


def main() -> None:
    tracing = tracekit.configure(service_name="checkout-demo", exporters=["console"])
    tracer = trace.get_tracer("checkout-demo")
    for cart_id in ("42", "slow", "fail"):
        with tracer.start_as_current_span(f"POST /checkout/{cart_id}", kind=trace.SpanKind.SERVER) as root:
            with tracer.start_as_current_span("reserve_inventory"):
                time.sleep(0.005)
            with tracer.start_as_current_span("authorize_payment") as payment:
                time.sleep(0.25 if cart_id == "slow" else 0.01)
                if cart_id == "fail":
                    payment.set_status(trace.StatusCode.ERROR, "bank answered 502")
                    payment.set_attribute("error.type", "502")
                    root.set_status(trace.StatusCode.ERROR, "payment failed")
                    root.set_attribute("error.type", "PaymentDeclined")
    tracing.shutdown()


if __name__ == "__main__":
    main()
