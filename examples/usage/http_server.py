"""An HTTP server span: a FastAPI app, called in process through httpx's ASGI transport.

    python examples/usage/http_server.py

The SERVER span is named from the route template (``GET /orders/{order_id}``), not from
the raw path, so every order lands in the same operation of your tracing backend.
"""

from __future__ import annotations

import asyncio

import tracekit


def main() -> None:
    tracekit.configure(service_name="orders-api", exporters=["console"])
    import httpx
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/orders/{order_id}")
    async def get_order(order_id: str) -> dict[str, str]:
        with tracekit.span("load_order"):
            return {"id": order_id}

    async def call() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://orders.local") as client:
            await client.get("/orders/7")

    asyncio.run(call())
    tracekit.shutdown()


if __name__ == "__main__":
    main()
