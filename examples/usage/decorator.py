"""Manual spans for business steps: ``@tracekit.traced`` and ``tracekit.span()``.

python examples/usage/decorator.py
"""

from __future__ import annotations

import asyncio

import tracekit


class PaymentDeclined(Exception):
    """The bank refused the charge."""


@tracekit.traced(record_args=("order_id",))
def reserve_inventory(order_id: str, card_token: str) -> int:
    # card_token is never recorded: only order_id was asked for (and secrets never are).
    return 3


@tracekit.traced
async def authorize_payment(order_id: str, amount_cents: int) -> None:
    await asyncio.sleep(0.01)
    if amount_cents > 10_000:
        raise PaymentDeclined(f"order {order_id}: amount over the card limit")


async def checkout(order_id: str, amount_cents: int) -> None:
    with tracekit.span("checkout", order_id=order_id):
        reserve_inventory(order_id, card_token="tok_123")
        try:
            await authorize_payment(order_id, amount_cents)
        except PaymentDeclined as exc:
            # The authorize_payment span is ERROR; the checkout answers and carries on.
            print(f"declined: {exc}")


def main() -> None:
    tracekit.configure(service_name="checkout-api", exporters=["console"])
    asyncio.run(checkout("A-1", 2_500))
    asyncio.run(checkout("A-2", 25_000))
    tracekit.shutdown()


if __name__ == "__main__":
    main()
