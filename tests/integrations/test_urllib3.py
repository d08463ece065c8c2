"""urllib3: PoolManager and connection pools against a real server on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import pytest
import urllib3
from httpcheck import capture_client_spans, check_client_span, check_exception_span, traceparent

import tracekit
from tracekit import _state
from tracekit.testing import SpanRecorder


def test_pool_manager_ok(http_spans: SpanRecorder, http_server: Any) -> None:
    with _state.tracer.start_as_current_span("parent"):
        response = urllib3.PoolManager().request("GET", http_server.url("/ok"))
    client_span, parent = http_spans.spans
    check_client_span(client_span, url=http_server.url("/ok"), port=http_server.port)
    assert client_span.parent is not None
    assert client_span.parent.span_id == parent.context.span_id
    assert response.json()["headers"]["traceparent"] == traceparent(client_span)


def test_connection_pool_and_error_statuses(http_spans: SpanRecorder, http_server: Any) -> None:
    pool = urllib3.HTTPConnectionPool("127.0.0.1", http_server.port)
    assert pool.request("GET", "/status/404").status == 404
    assert pool.request("DELETE", "/status/500").status == 500
    not_found, server_error = http_spans.spans
    check_client_span(not_found, url=http_server.url("/status/404"), port=http_server.port, status=404)
    check_client_span(
        server_error, url=http_server.url("/status/500"), port=http_server.port, status=500, method="DELETE"
    )


def test_connection_refused_each_retry_is_a_span(http_spans: SpanRecorder, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/ok"
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        urllib3.PoolManager().request("GET", url, retries=urllib3.Retry(connect=1, total=1))
    first, second = http_spans.spans
    check_exception_span(first, url=url, port=closed_port, error_type="urllib3.exceptions.NewConnectionError")
    assert "http.request.resend_count" not in (first.attributes or {})
    assert second.attributes is not None
    assert second.attributes["http.request.resend_count"] == 1
    assert second.attributes["error.type"] == "urllib3.exceptions.NewConnectionError"


def test_read_timeout(http_spans: SpanRecorder, http_server: Any) -> None:
    with pytest.raises(urllib3.exceptions.MaxRetryError) as raised:
        urllib3.request("GET", http_server.url("/slow"), timeout=0.2, retries=urllib3.Retry(read=0, total=0))
    assert isinstance(raised.value.reason, urllib3.exceptions.ReadTimeoutError)
    (span,) = http_spans.spans
    check_exception_span(
        span,
        url=http_server.url("/slow"),
        port=http_server.port,
        error_type="urllib3.exceptions.ReadTimeoutError",
    )


def test_redirects(http_spans: SpanRecorder, http_server: Any) -> None:
    response = urllib3.PoolManager().request("GET", http_server.url("/redirect-twice"))
    assert response.status == 200
    first, second, third = http_spans.spans
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


def test_streamed_response(http_spans: SpanRecorder, http_server: Any) -> None:
    response = urllib3.request("GET", http_server.url("/stream"), preload_content=False)
    (span,) = http_spans.spans
    assert b"".join(response.stream()) == b"chunk-0chunk-1chunk-2chunk-3chunk-4"
    response.release_conn()
    check_client_span(span, url=http_server.url("/stream"), port=http_server.port)


def test_headers_not_modified_capture_and_b3(http_server: Any) -> None:
    headers = {"X-Tag": "t"}
    with capture_client_spans(
        propagators=["b3multi"],
        http_capture_headers_client_request=["X-Tag"],
        http_capture_headers_client_response=["x-reply"],
    ) as recorder:
        pool = urllib3.HTTPConnectionPool("127.0.0.1", http_server.port, headers=headers)
        seen = pool.request("GET", "/reply-headers?password=p").headers
        (span,) = recorder.spans
    assert headers == {"X-Tag": "t"}
    assert seen["X-Reply"] == "one, two"
    check_client_span(
        span,
        url=http_server.url("/reply-headers?password=REDACTED"),
        port=http_server.port,
        extra={"http.request.header.x-tag": ("t",), "http.response.header.x-reply": ("one", "two")},
    )
    context = span.get_span_context()
    assert http_server.last_headers("/reply-headers")["x-b3-spanid"] == f"{context.span_id:016x}"


def test_excluded_urls_and_uninstrument(monkeypatch: pytest.MonkeyPatch, http_server: Any) -> None:
    monkeypatch.setenv("OTEL_PYTHON_URLLIB3_EXCLUDED_URLS", r"/status/\d+$")
    with capture_client_spans() as recorder:
        with _state.tracer.start_as_current_span("parent"):
            urllib3.request("GET", http_server.url("/status/404"))
        (parent,) = recorder.spans
        assert http_server.last_headers("/status/404")["traceparent"] == traceparent(parent)
        tracekit.uninstrument("urllib3")
        assert "traceparent" not in urllib3.request("GET", http_server.url("/ok")).json()["headers"]
        assert len(recorder.spans) == 1
