"""aiohttp ClientSession against uvicorn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import pytest
from httpcheck import capture_client_spans, check_client_span, check_exception_span, traceparent
from opentelemetry.trace import SpanKind

import tracekit
from tracekit import _state
from tracekit.testing import SpanRecorder

T = TypeVar("T")


def run(body: Callable[[aiohttp.ClientSession], Awaitable[T]], **session: Any) -> T:
    async def main() -> T:
        async with aiohttp.ClientSession(**session) as client:
            return await body(client)

    return asyncio.run(main())


async def get_json(client: aiohttp.ClientSession, url: str, **kwargs: Any) -> Any:
    async with client.get(url, **kwargs) as response:
        return json.loads(await response.text())


def test_ok(http_spans: SpanRecorder, asgi_server: Any) -> None:
    async def body(client: aiohttp.ClientSession) -> Any:
        with _state.tracer.start_as_current_span("parent"):
            return await get_json(client, asgi_server.url("/ok"))

    seen = run(body)["headers"]
    client_span, parent = http_spans.spans
    check_client_span(client_span, url=asgi_server.url("/ok"), port=asgi_server.port)
    assert client_span.parent is not None
    assert client_span.parent.span_id == parent.context.span_id
    assert seen["traceparent"] == traceparent(client_span)


def test_errors_redirects_and_failures(http_spans: SpanRecorder, asgi_server: Any, closed_port: int) -> None:
    async def body(client: aiohttp.ClientSession) -> None:
        async with client.get(asgi_server.url("/status/404")) as response:
            assert response.status == 404
        async with client.post(asgi_server.url("/status/500"), data=b"x") as response:
            assert response.status == 500
        async with client.get(asgi_server.url("/redirect")) as response:
            assert response.status == 200
        with pytest.raises(aiohttp.ClientConnectorError):
            await client.get(f"http://127.0.0.1:{closed_port}/ok")
        with pytest.raises(asyncio.TimeoutError):
            await client.get(asgi_server.url("/slow"), timeout=aiohttp.ClientTimeout(sock_read=0.2))

    run(body)
    not_found, server_error, redirect, ok, refused, timeout = http_spans.spans
    check_client_span(not_found, url=asgi_server.url("/status/404"), port=asgi_server.port, status=404)
    check_client_span(
        server_error, url=asgi_server.url("/status/500"), port=asgi_server.port, status=500, method="POST"
    )
    check_client_span(redirect, url=asgi_server.url("/redirect"), port=asgi_server.port, status=302)
    check_client_span(
        ok, url=asgi_server.url("/ok"), port=asgi_server.port, extra={"http.request.resend_count": 1}
    )
    check_exception_span(
        refused,
        url=f"http://127.0.0.1:{closed_port}/ok",
        port=closed_port,
        error_type="aiohttp.client_exceptions.ClientConnectorError",
    )
    check_exception_span(
        timeout,
        url=asgi_server.url("/slow"),
        port=asgi_server.port,
        error_type="aiohttp.client_exceptions.SocketTimeoutError",
    )


def test_streamed_body_is_read_after_the_span_ended(http_spans: SpanRecorder, asgi_server: Any) -> None:
    async def body(client: aiohttp.ClientSession) -> bytes:
        async with client.get(asgi_server.url("/stream")) as response:
            assert len(http_spans.spans) == 1
            return b"".join([piece async for piece in response.content.iter_any()])

    assert run(body) == b"chunk-0chunk-1chunk-2chunk-3chunk-4"
    (span,) = http_spans.spans
    check_client_span(span, url=asgi_server.url("/stream"), port=asgi_server.port)


def test_fifty_concurrent_requests_keep_their_parents(http_spans: SpanRecorder, asgi_server: Any) -> None:
    async def one(client: aiohttp.ClientSession, number: int) -> tuple[int, str]:
        with _state.tracer.start_as_current_span(f"parent-{number}") as parent:
            seen = await get_json(client, asgi_server.url(f"/ok?n={number}"))
            return parent.get_span_context().span_id, seen["headers"]["traceparent"]

    async def body(client: aiohttp.ClientSession) -> list[tuple[int, str]]:
        return await asyncio.gather(*(one(client, number) for number in range(50)))

    results = run(body)
    clients = {span.attributes["url.full"]: span for span in http_spans.spans if span.kind is SpanKind.CLIENT}
    assert len(clients) == 50
    for number, (parent_id, seen) in enumerate(results):
        span = clients[asgi_server.url(f"/ok?n={number}")]
        check_client_span(span, url=asgi_server.url(f"/ok?n={number}"), port=asgi_server.port)
        assert span.parent is not None
        assert span.parent.span_id == parent_id
        assert seen == traceparent(span)


def test_session_headers_b3_capture_and_redaction(asgi_server: Any) -> None:
    headers = {"X-Tag": "t"}
    with capture_client_spans(
        propagators=["b3multi"],
        http_capture_headers_client_request=["x-tag"],
        http_capture_headers_client_response=["x-reply", "set-cookie"],
    ) as recorder:
        seen = run(lambda client: get_json(client, asgi_server.url("/ok?token=abc")), headers=headers)[
            "headers"
        ]
        run(lambda client: client.get(asgi_server.url("/reply-headers"), headers=headers))
        ok, reply = recorder.spans
    assert headers == {"X-Tag": "t"}
    context = ok.get_span_context()
    assert seen["x-b3-traceid"] == f"{context.trace_id:032x}"
    assert seen["x-b3-spanid"] == f"{context.span_id:016x}"
    check_client_span(
        ok,
        url=asgi_server.url("/ok?token=REDACTED"),
        port=asgi_server.port,
        extra={"http.request.header.x-tag": ("t",)},
    )
    check_client_span(
        reply,
        url=asgi_server.url("/reply-headers"),
        port=asgi_server.port,
        extra={
            "http.request.header.x-tag": ("t",),
            "http.response.header.x-reply": ("one", "two"),
            "http.response.header.set-cookie": ("[REDACTED]",),
        },
    )


def test_user_middlewares_run_outside_the_span(http_spans: SpanRecorder, asgi_server: Any) -> None:
    calls: list[str] = []

    async def retry_once(request: Any, handler: Any) -> Any:
        calls.append("retry")
        first = await handler(request)
        if first.status == 500:
            first.release()
            return await handler(request)
        return first

    async def body(client: aiohttp.ClientSession) -> int:
        async with client.get(asgi_server.url("/status/500")) as response:
            return response.status

    assert run(body, middlewares=(retry_once,)) == 500
    assert calls == ["retry"]
    first, second = http_spans.spans
    check_client_span(first, url=asgi_server.url("/status/500"), port=asgi_server.port, status=500)
    check_client_span(
        second,
        url=asgi_server.url("/status/500"),
        port=asgi_server.port,
        status=500,
        extra={"http.request.resend_count": 1},
    )


def test_excluded_urls_and_uninstrument(monkeypatch: pytest.MonkeyPatch, asgi_server: Any) -> None:
    monkeypatch.setenv("OTEL_PYTHON_AIOHTTP_CLIENT_EXCLUDED_URLS", "/ok")
    with capture_client_spans() as recorder:

        async def body(client: aiohttp.ClientSession) -> Any:
            with _state.tracer.start_as_current_span("parent"):
                return await get_json(client, asgi_server.url("/ok"))

        seen = run(body)["headers"]
        (parent,) = recorder.spans
        assert seen["traceparent"] == traceparent(parent)
        tracekit.uninstrument("aiohttp_client")
        assert "traceparent" not in run(lambda client: get_json(client, asgi_server.url("/ok")))["headers"]
        assert len(recorder.spans) == 1
