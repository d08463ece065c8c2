"""OpenTelemetry's suppression keys turn every HTTP client integration into a pass-through."""

from __future__ import annotations

from typing import Any

import pytest
from httpcheck import CLIENTS
from opentelemetry import context

from tracekit.testing import SpanRecorder

KEYS = {
    "all instrumentation": context._SUPPRESS_INSTRUMENTATION_KEY,
    "http instrumentation": context._SUPPRESS_HTTP_INSTRUMENTATION_KEY,
}


@pytest.mark.parametrize("key", sorted(KEYS))
@pytest.mark.parametrize("name", sorted(CLIENTS))
def test_suppressed_requests_make_no_span_and_send_no_context(
    name: str, key: str, http_spans: SpanRecorder, http_server: Any
) -> None:
    token = context.attach(context.set_value(KEYS[key], True))
    try:
        status, _ = CLIENTS[name](http_server.url(f"/ok?suppressed-{name}"))
    finally:
        context.detach(token)
    assert status == 200
    assert "traceparent" not in http_server.last_headers("/ok")
    assert http_spans.spans == []
    CLIENTS[name](http_server.url(f"/ok?traced-{name}"))  # and only while the key is set
    (span,) = http_spans.spans
    assert http_server.last_headers("/ok")["traceparent"].split("-")[2] == f"{span.context.span_id:016x}"
