"""urllib.request against a real server on 127.0.0.1."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from httpcheck import capture_client_spans, check_client_span, check_exception_span, traceparent

import tracekit
from tracekit import _state
from tracekit.testing import SpanRecorder


def test_ok(http_spans: SpanRecorder, http_server: Any) -> None:
    with (
        _state.tracer.start_as_current_span("parent"),
        urllib.request.urlopen(http_server.url("/ok")) as response,
    ):
        seen = json.load(response)["headers"]
    client_span, parent = http_spans.spans
    check_client_span(client_span, url=http_server.url("/ok"), port=http_server.port)
    assert client_span.parent is not None
    assert client_span.parent.span_id == parent.context.span_id
    assert seen["traceparent"] == traceparent(client_span)


@pytest.mark.parametrize("status", [404, 500])
def test_error_statuses_before_http_error(http_spans: SpanRecorder, http_server: Any, status: int) -> None:
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(http_server.url(f"/status/{status}"))
    raised.value.close()
    assert raised.value.code == status
    (span,) = http_spans.spans
    check_client_span(span, url=http_server.url(f"/status/{status}"), port=http_server.port, status=status)


def test_connection_refused(http_spans: SpanRecorder, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/ok"
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url)
    (span,) = http_spans.spans
    check_exception_span(span, url=url, port=closed_port, error_type="urllib.error.URLError")


def test_read_timeout(http_spans: SpanRecorder, http_server: Any) -> None:
    with pytest.raises(TimeoutError):
        urllib.request.urlopen(http_server.url("/slow"), timeout=0.2)
    (span,) = http_spans.spans
    check_exception_span(span, url=http_server.url("/slow"), port=http_server.port, error_type="TimeoutError")


def test_redirects(http_spans: SpanRecorder, http_server: Any) -> None:
    with urllib.request.urlopen(http_server.url("/redirect-twice")) as response:
        seen = json.load(response)["headers"]
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
    assert seen["traceparent"] == traceparent(third)


def test_streamed_body_is_read_after_the_span_ended(http_spans: SpanRecorder, http_server: Any) -> None:
    with urllib.request.urlopen(http_server.url("/stream")) as response:
        (span,) = http_spans.spans
        assert response.read() == b"chunk-0chunk-1chunk-2chunk-3chunk-4"
    check_client_span(span, url=http_server.url("/stream"), port=http_server.port)


def test_the_callers_request_is_not_modified_b3_and_capture(http_server: Any) -> None:
    request = urllib.request.Request(http_server.url("/reply-headers"), headers={"X-Tag": "t"}, method="POST")
    with capture_client_spans(
        propagators=["b3"],
        http_capture_headers_client_request=["x-tag"],
        http_capture_headers_client_response=["X-Reply", "Set-Cookie"],
    ) as recorder:
        urllib.request.urlopen(request, data=b"body").close()
        urllib.request.urlopen(request, data=b"body").close()
        first, second = recorder.spans
    assert request.headers == {"X-tag": "t"}
    for span in (first, second):
        check_client_span(
            span,
            url=http_server.url("/reply-headers"),
            port=http_server.port,
            method="POST",
            extra={
                "http.request.header.x-tag": ("t",),
                "http.response.header.x-reply": ("one", "two"),
                "http.response.header.set-cookie": ("[REDACTED]",),
            },
        )
    context = second.get_span_context()
    assert (
        http_server.last_headers("/reply-headers")["b3"]
        == f"{context.trace_id:032x}-{context.span_id:016x}-1"
    )


def test_excluded_urls_and_uninstrument(monkeypatch: pytest.MonkeyPatch, http_server: Any) -> None:
    monkeypatch.setenv("OTEL_PYTHON_EXCLUDED_URLS", "/ok$")
    with capture_client_spans() as recorder:
        with _state.tracer.start_as_current_span("parent"):
            urllib.request.urlopen(http_server.url("/ok")).close()
        (parent,) = recorder.spans
        assert http_server.last_headers("/ok")["traceparent"] == traceparent(parent)
        tracekit.uninstrument("urllib")
        with urllib.request.urlopen(http_server.url("/ok?after")) as response:
            assert "traceparent" not in json.load(response)["headers"]
        assert len(recorder.spans) == 1
