"""requests: Session against a real server on 127.0.0.1; one span per request, none from urllib3 below."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from httpcheck import capture_client_spans, check_client_span, check_exception_span, traceparent
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import tracekit
from tracekit import _state
from tracekit.testing import SpanRecorder


def test_ok_response_is_one_span_over_urllib3(http_spans: SpanRecorder, http_server: Any) -> None:
    with _state.tracer.start_as_current_span("parent"), requests.Session() as session:
        response = session.get(http_server.url("/ok"))
    client_span, parent = http_spans.spans  # no second span from urllib3
    check_client_span(client_span, url=http_server.url("/ok"), port=http_server.port)
    assert client_span.parent is not None
    assert client_span.parent.span_id == parent.context.span_id
    assert response.json()["headers"]["traceparent"] == traceparent(client_span)


@pytest.mark.parametrize("status", [404, 500])
def test_error_statuses(http_spans: SpanRecorder, http_server: Any, status: int) -> None:
    assert requests.get(http_server.url(f"/status/{status}")).status_code == status
    (span,) = http_spans.spans
    check_client_span(span, url=http_server.url(f"/status/{status}"), port=http_server.port, status=status)


def test_connection_refused(http_spans: SpanRecorder, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/ok"
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url)
    (span,) = http_spans.spans
    check_exception_span(span, url=url, port=closed_port, error_type="requests.exceptions.ConnectionError")


def test_read_timeout(http_spans: SpanRecorder, http_server: Any) -> None:
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(http_server.url("/slow"), timeout=0.2)
    (span,) = http_spans.spans
    check_exception_span(
        span,
        url=http_server.url("/slow"),
        port=http_server.port,
        error_type="requests.exceptions.ReadTimeout",
    )


def test_redirects(http_spans: SpanRecorder, http_server: Any) -> None:
    response = requests.get(http_server.url("/redirect-twice"))
    assert response.status_code == 200
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
    assert response.json()["headers"]["traceparent"] == traceparent(third)


def test_streamed_response_span_ends_at_the_headers(http_spans: SpanRecorder, http_server: Any) -> None:
    with requests.get(http_server.url("/stream"), stream=True) as response:
        (span,) = http_spans.spans
        assert b"".join(response.iter_content(chunk_size=None)) == b"chunk-0chunk-1chunk-2chunk-3chunk-4"
    check_client_span(span, url=http_server.url("/stream"), port=http_server.port)


def test_callers_headers_not_modified_and_b3(http_server: Any) -> None:
    headers = {"X-Tag": "mine"}
    with capture_client_spans(propagators=["b3"]) as recorder:
        seen = requests.get(http_server.url("/ok"), headers=headers).json()["headers"]
        (span,) = recorder.spans
    assert headers == {"X-Tag": "mine"}
    context = span.get_span_context()
    assert seen["b3"] == f"{context.trace_id:032x}-{context.span_id:016x}-1"


def test_header_capture_and_url_redaction(http_server: Any) -> None:
    url = f"http://user:pw@127.0.0.1:{http_server.port}/reply-headers?api_key=k&q=1"
    with capture_client_spans(
        http_capture_headers_client_request=["x-tag", "authorization"],
        http_capture_headers_client_response=["X-Reply", "set-cookie"],
    ) as recorder:
        requests.get(url, headers={"X-Tag": "t"})
        (span,) = recorder.spans
    check_client_span(
        span,
        url=f"http://REDACTED:REDACTED@127.0.0.1:{http_server.port}/reply-headers?api_key=REDACTED&q=1",
        port=http_server.port,
        extra={
            "http.request.header.x-tag": ("t",),
            "http.request.header.authorization": ("[REDACTED]",),  # from user:pw
            "http.response.header.x-reply": ("one, two",),
            "http.response.header.set-cookie": ("[REDACTED]",),
        },
    )


def test_excluded_urls(monkeypatch: pytest.MonkeyPatch, http_server: Any) -> None:
    monkeypatch.setenv("OTEL_PYTHON_REQUESTS_EXCLUDED_URLS", "status/404")
    with capture_client_spans() as recorder, _state.tracer.start_as_current_span("parent"):
        requests.get(http_server.url("/status/404"))
    (parent,) = recorder.spans  # neither requests nor urllib3 made a span
    assert http_server.last_headers("/status/404")["traceparent"] == traceparent(parent)


def test_uninstrument(http_spans: SpanRecorder, http_server: Any) -> None:
    tracekit.uninstrument("requests")
    seen = requests.get(http_server.url("/ok")).json()["headers"]
    (span,) = http_spans.spans  # urllib3, still instrumented, makes the span now
    check_client_span(span, url=http_server.url("/ok"), port=http_server.port)
    assert seen["traceparent"] == traceparent(span)
    tracekit.uninstrument("urllib3")
    assert "traceparent" not in requests.get(http_server.url("/ok")).json()["headers"]
    assert len(http_spans.spans) == 1


def test_the_otlp_exporters_own_requests_are_not_traced(http_server: Any) -> None:
    """The http/protobuf exporter sends through requests; its export runs with suppression set."""
    memory = InMemorySpanExporter()
    with capture_client_spans(
        exporters=["otlp", memory],
        protocol="http/protobuf",
        traces_endpoint=http_server.url("/v1/traces"),
        instrument=["requests", "urllib3"],
    ) as recorder:
        requests.get(http_server.url("/ok"))
        recorder.tracing.force_flush(timeout=10)
        requests.get(http_server.url("/ok?second"))
        recorder.tracing.force_flush(timeout=10)
        names = [(span.name, span.attributes["url.full"]) for span in memory.get_finished_spans()]
    exports = [headers for method, path, headers in http_server.seen if path == "/v1/traces"]
    assert len(exports) >= 2
    assert all("traceparent" not in headers for headers in exports)
    assert names == [("GET", http_server.url("/ok")), ("GET", http_server.url("/ok?second"))]


# --------------------------------------------------------------------------- adapters of their own


class _CannedAdapter(requests.adapters.BaseAdapter):
    """A transport of the application's own (as test adapters and custom transports are):
    it answers without any network, and keeps the headers it was asked to send."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, str]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent.append(dict(request.headers))
        response = requests.Response()
        response.status_code = 418
        response.url = request.url or ""
        response.request = request
        response._content = b"teapot"
        return response

    def close(self) -> None:
        return None


class _CountingAdapter(requests.adapters.HTTPAdapter):
    """An ``HTTPAdapter`` whose ``send`` does something of its own, then the usual."""

    calls = 0

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        type(self).calls += 1
        return super().send(request, *args, **kwargs)


def test_a_mounted_adapter_of_its_own_is_traced_once_per_request(http_spans: SpanRecorder) -> None:
    adapter = _CannedAdapter()
    with requests.Session() as session:
        session.mount("http://canned.test:8080/", adapter)
        response = session.get("http://canned.test:8080/brew?pot=1")
    assert (response.status_code, response.content) == (418, b"teapot")
    (span,) = http_spans.spans
    assert (span.name, span.kind, span.status.status_code) == ("GET", SpanKind.CLIENT, StatusCode.ERROR)
    # No network.protocol.version: the canned response has no urllib3 response under it.
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "server.address": "canned.test",
        "server.port": 8080,
        "url.full": "http://canned.test:8080/brew?pot=1",
        "http.response.status_code": 418,
        "error.type": "418",
    }
    assert [headers["traceparent"] for headers in adapter.sent] == [traceparent(span)]


def test_an_adapter_calling_the_usual_send_makes_one_span(http_spans: SpanRecorder, http_server: Any) -> None:
    _CountingAdapter.calls = 0
    with requests.Session() as session:
        session.mount("http://", _CountingAdapter())
        response = session.get(http_server.url("/ok"))
    assert _CountingAdapter.calls == 1
    (span,) = http_spans.spans  # the subclass's span; HTTPAdapter.send under it makes none
    check_client_span(span, url=http_server.url("/ok"), port=http_server.port)
    assert response.json()["headers"]["traceparent"] == traceparent(span)


def test_unpatching_restores_an_adapters_own_send(http_spans: SpanRecorder) -> None:
    class Adapter(_CannedAdapter):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            return super().send(request, **kwargs)

    original = vars(Adapter)["send"]
    with requests.Session() as session:
        session.mount("http://canned.test/", Adapter())
        assert vars(Adapter)["send"] is not original
        tracekit.uninstrument("requests")
        assert vars(Adapter)["send"] is original
        assert session.get("http://canned.test/").status_code == 418
        assert http_spans.spans == []
        tracekit.instrument("requests")
        session.mount("http://canned.test/", Adapter())
        assert session.get("http://canned.test/").status_code == 418
    assert len(http_spans.spans) == 1


def test_an_adapter_of_its_own_gets_one_traceparent_whatever_case_the_caller_used(
    http_spans: SpanRecorder,
) -> None:
    adapter = _CannedAdapter()
    headers = {"TraceParent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "X-Tag": "mine"}
    with requests.Session() as session:
        session.mount("http://canned.test/", adapter)
        session.get("http://canned.test/", headers=headers)
    assert headers == {
        "TraceParent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "X-Tag": "mine",
    }
    (span,) = http_spans.spans
    (sent,) = adapter.sent
    assert [value for name, value in sent.items() if name.lower() == "traceparent"] == [traceparent(span)]
    assert sent["X-Tag"] == "mine"
