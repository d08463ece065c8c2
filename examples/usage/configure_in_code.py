"""Configure tracekit in code and see a trace on stderr.

python examples/usage/configure_in_code.py
"""

from __future__ import annotations

from opentelemetry import trace

import tracekit


def main() -> None:
    tracekit.configure(service_name="checkout-api", environment="dev", exporters=["console"])
    tracer = trace.get_tracer("checkout")
    with tracer.start_as_current_span("checkout", kind=trace.SpanKind.SERVER) as span:
        span.set_attribute("tracekit.cart_id", "42")
        with tracer.start_as_current_span("reserve_inventory"):
            pass
    tracekit.shutdown()


if __name__ == "__main__":
    main()
