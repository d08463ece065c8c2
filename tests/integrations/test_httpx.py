"""httpx: Client and AsyncClient against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from httpcheck import capture_client_spans, check_client_span, check_exception_span, traceparent
from opentelemetry.trace import SpanKind

import tracekit
from tracekit import _state
from tracekit.testing import SpanRecorder


def test_ok_response_is_a_child_client_span(http_spans: SpanRecorder, http_server: Any) -> None:
    with _state.tracer.start_as_current_span("parent"), httpx.Client() as client:
        response = client.get(http_server.url("/ok"))
    assert response.status_code == 200
    client_span, parent = http_spans.spans
    check_client_span(client_span, url=http_server.url("/ok"), port=http_server.port)
    assert client_span.parent is not None
    assert client_span.parent.span_id == parent.context.span_id
    assert response.json()["headers"]["traceparent"] == traceparent(client_span)


@pytest.mark.parametrize("status", [404, 500])
def test_error_statuses_mark_the_span(http_spans: SpanRecorder, http_server: Any, status: int) -> None:
    response = httpx.get(http_server.url(f"/status/{status}"))
    assert response.status_code == status
    (span,) = http_spans.spans
    check_client_span(span, url=http_server.url(f"/status/{status}"), port=http_server.port, status=status)


def test_connection_refused_is_recorded_and_reraised(http_spans: SpanRecorder, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/ok"
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)
    (span,) = http_spans.spans
    check_exception_span(span, url=url, port=closed_port, error_type="httpx.ConnectError")


def test_read_timeout_is_recorded_and_reraised(http_spans: SpanRecorder, http_server: Any) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(http_server.url("/slow"), timeout=0.2)
    (span,) = http_spans.spans
    check_exception_span(
        span, url=http_server.url("/slow"), port=http_server.port, error_type="httpx.ReadTimeout"
    )


def test_each_redirect_is_a_span_with_resend_count(http_spans: SpanRecorder, http_server: Any) -> None:
    with _state.tracer.start_as_current_span("parent"):
        response = httpx.get(http_server.url("/redirect-twice"), follow_redirects=True)
    assert [r.status_code for r in response.history] == [302, 302]
    first, second, third, parent = http_spans.spans
    check_client_span(first, url=http_server.url("/redirect-twice"), port=http_server.port, status=302)
    check_client_span(
        second,
        url=http_server.url("/redirect"),
        port=http_server.port,
        status=302,
        extra={"http.request.resend_count": 1},
    )
    check_client_span(
        third, url=http_server.url("/ok"), port=http_server.port, extra={"http.request.resend_count": 2}
    )
    assert {span.parent.span_id for span in (first, second, third) if span.parent} == {parent.context.span_id}
    assert http_server.last_headers("/ok")["traceparent"] == traceparent(third)


def test_streamed_response_span_ends_at_headers(http_spans: SpanRecorder, http_server: Any) -> None:
    with httpx.Client() as client, client.stream("GET", http_server.url("/stream")) as response:
        (span,) = http_spans.spans  # already ended: the body has not been read yet
        body = b"".join(response.iter_bytes())
    assert body == b"".join(f"chunk-{n}".encode() for n in range(5))
    check_client_span(span, url=http_server.url("/stream"), port=http_server.port)
    assert http_spans.spans == [span]


def test_a_user_supplied_transport_is_traced(http_spans: SpanRecorder) -> None:
    received: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(201, json={})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        assert client.post("http://service.invalid/items").status_code == 201
    (span,) = http_spans.spans
    assert dict(span.attributes or {}) == {
        "http.request.method": "POST",
        "server.address": "service.invalid",
        "server.port": 80,
        "url.full": "http://service.invalid/items",
        "http.response.status_code": 201,
        "network.protocol.version": "1.1",
    }
    assert received[0].headers["traceparent"] == traceparent(span)


def test_fifty_concurrent_async_requests(http_spans: SpanRecorder, asgi_server: Any) -> None:
    async def one(client: httpx.AsyncClient, number: int) -> tuple[int, str]:
        with _state.tracer.start_as_current_span(f"parent-{number}") as parent:
            response = await client.get(asgi_server.url(f"/ok?n={number}"))
            return parent.get_span_context().span_id, response.json()["headers"]["traceparent"]

    async def main() -> list[tuple[int, str]]:
        async with httpx.AsyncClient() as client:
            return await asyncio.gather(*(one(client, number) for number in range(50)))

    results = asyncio.run(main())
    recorded = http_spans.spans
    clients = {span.attributes["url.full"]: span for span in recorded if span.kind is SpanKind.CLIENT}
    parents = {span.name: span for span in recorded if span.name.startswith("parent-")}
    assert len(clients) == 50
    assert len(parents) == 50
    for number, (parent_id, seen) in enumerate(results):
        span = clients[asgi_server.url(f"/ok?n={number}")]
        check_client_span(span, url=asgi_server.url(f"/ok?n={number}"), port=asgi_server.port)
        assert span.parent is not None
        assert span.parent.span_id == parent_id
        assert parents[f"parent-{number}"].context.span_id == parent_id
        assert seen == traceparent(span)


def test_async_errors_and_redirects(http_spans: SpanRecorder, asgi_server: Any, closed_port: int) -> None:
    async def main() -> None:
        async with httpx.AsyncClient(follow_redirects=True) as client:
            assert (await client.get(asgi_server.url("/redirect"))).status_code == 200
            assert (await client.get(asgi_server.url("/status/500"))).status_code == 500
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{closed_port}/")
            with pytest.raises(httpx.ReadTimeout):
                await client.get(asgi_server.url("/slow"), timeout=0.2)

    asyncio.run(main())
    redirect, ok, error, refused, timeout = http_spans.spans
    check_client_span(redirect, url=asgi_server.url("/redirect"), port=asgi_server.port, status=302)
    check_client_span(
        ok, url=asgi_server.url("/ok"), port=asgi_server.port, extra={"http.request.resend_count": 1}
    )
    check_client_span(error, url=asgi_server.url("/status/500"), port=asgi_server.port, status=500)
    check_exception_span(
        refused, url=f"http://127.0.0.1:{closed_port}/", port=closed_port, error_type="httpx.ConnectError"
    )
    check_exception_span(
        timeout, url=asgi_server.url("/slow"), port=asgi_server.port, error_type="httpx.ReadTimeout"
    )


def test_async_streamed_response(http_spans: SpanRecorder, asgi_server: Any) -> None:
    async def main() -> bytes:
        async with (
            httpx.AsyncClient() as client,
            client.stream("GET", asgi_server.url("/stream")) as response,
        ):
            assert len(http_spans.spans) == 1
            return b"".join([piece async for piece in response.aiter_bytes()])

    assert asyncio.run(main()) == b"chunk-0chunk-1chunk-2chunk-3chunk-4"
    (span,) = http_spans.spans
    check_client_span(span, url=asgi_server.url("/stream"), port=asgi_server.port)


def test_b3_headers_when_configured(http_server: Any) -> None:
    with capture_client_spans(propagators=["b3multi"]) as recorder:
        seen = httpx.get(http_server.url("/ok")).json()["headers"]
        (span,) = recorder.spans
    context = span.get_span_context()
    assert seen["x-b3-traceid"] == f"{context.trace_id:032x}"
    assert seen["x-b3-spanid"] == f"{context.span_id:016x}"
    assert seen["x-b3-sampled"] == "1"
    assert "traceparent" not in seen


def test_the_callers_headers_mapping_is_not_modified(http_spans: SpanRecorder, http_server: Any) -> None:
    headers = {"X-Tag": "mine"}
    with httpx.Client() as client:
        first = client.get(http_server.url("/ok"), headers=headers).json()["headers"]
        second = client.get(http_server.url("/ok"), headers=headers).json()["headers"]
    assert headers == {"X-Tag": "mine"}
    one, two = http_spans.spans
    assert (first["traceparent"], second["traceparent"]) == (traceparent(one), traceparent(two))
    assert first["x-tag"] == second["x-tag"] == "mine"


def test_header_capture_and_redaction(monkeypatch: pytest.MonkeyPatch, http_server: Any) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST", "X-Tag,Authorization")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE", "x-reply,SET-COOKIE")
    url = http_server.url("/reply-headers?token=secret&page=2")
    with capture_client_spans() as recorder:
        httpx.get(url, headers={"X-Tag": "t", "Authorization": "Bearer secret"})
        (span,) = recorder.spans
    check_client_span(
        span,
        url=http_server.url("/reply-headers?token=REDACTED&page=2"),
        port=http_server.port,
        extra={
            "http.request.header.x-tag": ("t",),
            "http.request.header.authorization": ("[REDACTED]",),
            "http.response.header.x-reply": ("one", "two"),
            "http.response.header.set-cookie": ("[REDACTED]",),
        },
    )


def test_credentials_in_the_url_are_redacted(http_spans: SpanRecorder, http_server: Any) -> None:
    httpx.get(f"http://user:pass@127.0.0.1:{http_server.port}/ok?sig=abc&X-Amz-Signature=def&a=1")
    (span,) = http_spans.spans
    assert span.attributes is not None
    assert span.attributes["url.full"] == (
        f"http://REDACTED:REDACTED@127.0.0.1:{http_server.port}/ok?sig=REDACTED&X-Amz-Signature=REDACTED&a=1"
    )


def test_unknown_methods_are_other(http_spans: SpanRecorder, http_server: Any) -> None:
    httpx.request("PURGE", http_server.url("/ok"))
    (span,) = http_spans.spans
    check_client_span(
        span,
        url=http_server.url("/ok"),
        port=http_server.port,
        method="_OTHER",
        extra={"http.request.method_original": "PURGE"},
    )


def test_excluded_urls_no_span_but_propagation(monkeypatch: pytest.MonkeyPatch, http_server: Any) -> None:
    monkeypatch.setenv("OTEL_PYTHON_EXCLUDED_URLS", "/nothing-matches")
    monkeypatch.setenv("OTEL_PYTHON_HTTPX_EXCLUDED_URLS", "/status/4[0-9]{2},/health")
    with capture_client_spans() as recorder:
        with _state.tracer.start_as_current_span("parent") as parent:
            httpx.get(http_server.url("/status/404"))
            httpx.get(http_server.url("/ok"))
        ok, parent_span = list(recorder.spans)
    assert parent_span.name == "parent"
    assert http_server.last_headers("/status/404")["traceparent"] == traceparent(parent_span)
    check_client_span(ok, url=http_server.url("/ok"), port=http_server.port)
    assert parent.get_span_context().span_id == parent_span.context.span_id


def test_old_attribute_names_under_http_dup(http_server: Any) -> None:
    with capture_client_spans(semconv_opt_in=["http/dup"]) as recorder:
        httpx.get(http_server.url("/status/404"))
        (span,) = recorder.spans
    url = http_server.url("/status/404")
    check_client_span(
        span,
        url=url,
        port=http_server.port,
        status=404,
        extra={
            "http.method": "GET",
            "http.url": url,
            "net.peer.name": "127.0.0.1",
            "net.peer.port": http_server.port,
            "http.status_code": 404,
            "http.flavor": "1.1",
        },
    )


def test_uninstrument_restores_plain_httpx(http_spans: SpanRecorder, http_server: Any) -> None:
    tracekit.uninstrument("httpx")
    seen = httpx.get(http_server.url("/ok")).json()["headers"]
    assert "traceparent" not in seen
    assert http_spans.spans == []
    tracekit.instrument("httpx")
    httpx.get(http_server.url("/ok"))
    assert len(http_spans.spans) == 1
