"""The ASGI service: FastAPI, a pool of async psycopg connections, an httpx client.

No tracing code: each variant starts it unchanged (``uvicorn benchmarks.load.asgi:app``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from benchmarks.load import DSN, QUERY, STUB_URL

__all__ = ["app"]

_POOL_SIZE = 8
_pool = AsyncConnectionPool(DSN, min_size=_POOL_SIZE, max_size=_POOL_SIZE, open=False)
_clients: dict[str, httpx.AsyncClient] = {}


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    await _pool.open(wait=True)
    _clients["stub"] = httpx.AsyncClient(trust_env=False, limits=httpx.Limits(max_connections=64))
    yield
    await _clients["stub"].aclose()
    await _pool.close()


app = FastAPI(lifespan=_lifespan)


async def _query(item: int) -> dict[str, Any]:
    async with _pool.connection() as connection:
        cursor = await connection.execute(QUERY, (item,))
        row = await cursor.fetchone()
    assert row is not None
    return {"id": row[0], "name": row[1]}


@app.get("/plain")
async def plain() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/db/{item}")
async def db(item: int) -> dict[str, Any]:
    return await _query(item)


@app.get("/chain")
async def chain() -> dict[str, Any]:
    response = await _clients["stub"].get(STUB_URL)
    response.raise_for_status()
    return await _query(7)
