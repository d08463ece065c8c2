"""redis-py, sync and asyncio, against the machine's Redis."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis
import redis.asyncio
from dbcheck import check_db_span

from tracekit import _state
from tracekit.integrations.redis import command_text
from tracekit.testing import SpanRecorder, capture_spans


def _attributes(server: Any, operation: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "db.system.name": "redis",
        "db.namespace": server.database,
        "server.address": server.host,
        "server.port": server.port,
        "db.operation.name": operation,
        "db.query.text": text,
        **extra,
    }


@pytest.fixture
def key() -> str:
    return f"user:{uuid.uuid4().int % 10**8}"


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("SET", "user:42", "secret"), "SET user:? ?"),
        (("GET", b"session:ab12cd"), "GET session:?"),
        (("HSET", "cart:7:items", "sku-1", "3"), "HSET cart:?:items ? ?"),
        (("GET", "bob@example.com"), "GET ?.com"),
        (("AUTH", "user", "password"), "AUTH ? ?"),
        (("CLIENT SETNAME", "name"), "CLIENT SETNAME ?"),
        (("PING",), "PING"),
        (("EXPIRE", "plain_words", 60), "EXPIRE plain_words ?"),
    ],
)
def test_command_text_keeps_no_value(args: tuple[Any, ...], text: str) -> None:
    assert command_text(args) == text


def test_commands_pipelines_and_transactions(spans: SpanRecorder, redis_server: Any, key: str) -> None:
    client = redis.Redis(host=redis_server.host, port=redis_server.port, db=int(redis_server.database))
    with _state.tracer.start_as_current_span("request"):
        client.set(key, "secret-value")
        assert client.get(key) == b"secret-value"
        with client.pipeline(transaction=False) as pipeline:
            pipeline.incr(f"{key}:n").expire(f"{key}:n", 60)
            assert pipeline.execute() == [1, True]
        with client.pipeline() as pipeline:
            pipeline.watch(key)
            assert pipeline.get(key) == b"secret-value"  # immediate while watching
            pipeline.multi()
            pipeline.set(key, "new").delete(f"{key}:n")
            assert pipeline.execute() == [True, 1]
        with pytest.raises(redis.ResponseError):
            client.lpush(key, "x")
        client.delete(key)
    client.close()
    *children, parent = spans.spans
    assert [span.name for span in children] == [
        "SET",
        "GET",
        "PIPELINE",
        "WATCH",
        "GET",
        "MULTI",
        "LPUSH",
        "DEL",
    ]
    check_db_span(children[0], "SET", _attributes(redis_server, "SET", "SET user:? ?"), parent=parent)
    check_db_span(
        children[2],
        "PIPELINE",
        _attributes(
            redis_server, "PIPELINE", "INCRBY user:?:n ?; EXPIRE user:?:n ?", **{"db.operation.batch.size": 2}
        ),
        parent=parent,
    )
    check_db_span(
        children[5],
        "MULTI",
        _attributes(redis_server, "MULTI", "SET user:? ?; DEL user:?:n", **{"db.operation.batch.size": 2}),
        parent=parent,
    )
    check_db_span(
        children[6],
        "LPUSH",
        _attributes(
            redis_server,
            "LPUSH",
            "LPUSH user:? ?",
            **{"error.type": "redis.exceptions.ResponseError", "db.response.status_code": "WRONGTYPE"},
        ),
        parent=parent,
        error=True,
    )


def test_asyncio_client(spans: SpanRecorder, redis_server: Any, key: str) -> None:
    async def main() -> list[Any]:
        client = redis.asyncio.Redis(
            host=redis_server.host, port=redis_server.port, db=int(redis_server.database)
        )
        try:
            await client.set(key, "v")
            async with client.pipeline(transaction=True) as pipeline:
                pipeline.get(key).delete(key)
                return list(await pipeline.execute())
        finally:
            await client.aclose()

    assert asyncio.run(main()) == [b"v", 1]
    single, multi = spans.spans
    check_db_span(single, "SET", _attributes(redis_server, "SET", "SET user:? ?"))
    check_db_span(
        multi,
        "MULTI",
        _attributes(redis_server, "MULTI", "GET user:?; DEL user:?", **{"db.operation.batch.size": 2}),
    )


def test_raw_statements_show_the_values_when_asked(redis_server: Any, key: str) -> None:
    with capture_spans(db_statement="raw") as recorder:
        client = redis.Redis(host=redis_server.host, port=redis_server.port)
        client.set(key, "visible")
        client.delete(key)
        client.close()
        first, _ = recorder.spans
    assert first.attributes["db.query.text"] == f"SET {key} visible"  # type: ignore[index]
