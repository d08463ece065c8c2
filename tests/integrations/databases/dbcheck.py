"""Exact checks of database spans."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode


def check_db_span(
    span: ReadableSpan,
    name: str,
    attributes: dict[str, Any],
    *,
    parent: ReadableSpan | None = None,
    error: bool = False,
) -> None:
    """``span`` is a CLIENT span called ``name`` with exactly ``attributes`` (and status, parent)."""
    assert span.name == name, (span.name, dict(span.attributes or {}))
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes or {}) == attributes
    if error:
        assert span.status.status_code is StatusCode.ERROR
        assert [event.name for event in span.events] == ["exception"]
    else:
        assert span.status.status_code is StatusCode.UNSET
        assert not span.events
    if parent is not None:
        assert span.parent is not None
        assert span.parent.span_id == parent.context.span_id
        assert span.context.trace_id == parent.context.trace_id


def exception_event(span: ReadableSpan) -> dict[str, Any]:
    (event,) = span.events
    assert event.name == "exception"
    return dict(event.attributes or {})
