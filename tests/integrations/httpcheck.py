"""Exact checks of HTTP client spans, shared by the client integration tests."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import aiohttp
import httpx
import requests
import urllib3
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from tracekit.testing import SpanRecorder, capture_spans


def traceparent(span: ReadableSpan) -> str:
    """The traceparent header a request made under ``span`` carries."""
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def check_client_span(
    span: ReadableSpan,
    *,
    url: str,
    port: int,
    status: int | None = 200,
    method: str = "GET",
    version: str | None = "1.1",
    extra: dict[str, Any] | None = None,
) -> None:
    """Assert the exact name, kind, attributes and status of an HTTP client span."""
    expected: dict[str, Any] = {
        "http.request.method": method,
        "server.address": "127.0.0.1",
        "server.port": port,
        "url.full": url,
    }
    if status is not None:
        expected["http.response.status_code"] = status
        if version is not None:
            expected["network.protocol.version"] = version
        if status >= 400:
            expected["error.type"] = str(status)
    expected.update(extra or {})
    assert span.name == (method if method != "_OTHER" else "HTTP")
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes or {}) == expected
    if status is not None and status < 400:
        assert span.status.status_code is StatusCode.UNSET
        assert not span.events
    else:
        assert span.status.status_code is StatusCode.ERROR


def check_exception_span(
    span: ReadableSpan, *, url: str, port: int, error_type: str, method: str = "GET"
) -> None:
    """An HTTP client span for a request that raised ``error_type``."""
    check_client_span(span, url=url, port=port, status=None, method=method, extra={"error.type": error_type})
    assert [event.name for event in span.events] == ["exception"]
    attributes = dict(span.events[0].attributes or {})
    assert attributes["exception.type"] == error_type
    assert set(attributes) == {"exception.type", "exception.message", "exception.stacktrace"}


#: What the client tests switch on: the HTTP clients and threading, never the test servers' frameworks.
CLIENT_INTEGRATIONS = ("threading", "httpx", "requests", "urllib3", "urllib", "aiohttp_client")


def capture_client_spans(**overrides: Any) -> AbstractContextManager[SpanRecorder]:
    """:func:`tracekit.testing.capture_spans` with only the HTTP client integrations instrumented."""
    return capture_spans(**{"instrument": list(CLIENT_INTEGRATIONS), **overrides})


# One GET with each client: ``(status, body)``.


def _httpx(url: str) -> tuple[int, bytes]:
    response = httpx.get(url)
    return response.status_code, response.content


def _requests(url: str) -> tuple[int, bytes]:
    response = requests.get(url)
    return response.status_code, response.content


def _urllib3(url: str) -> tuple[int, bytes]:
    response = urllib3.request("GET", url)
    return response.status, response.data


def _urllib(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url) as response:
        return response.status, response.read()


def _aiohttp(url: str) -> tuple[int, bytes]:
    async def main() -> tuple[int, bytes]:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status, await response.read()

    return asyncio.run(main())


CLIENTS: dict[str, Callable[[str], tuple[int, bytes]]] = {
    "httpx": _httpx,
    "requests": _requests,
    "urllib3": _urllib3,
    "urllib": _urllib,
    "aiohttp_client": _aiohttp,
}
