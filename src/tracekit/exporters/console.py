"""A human-readable exporter: one line per span on stderr, indented as a tree.

Spans are held back until the local root of their trace ends, then the trace is printed
in start order with children indented under their parents, so a trace reads top-down
without a collector. Spans that end after their root are printed at once, indented
under the parent they name when it was printed; the rest are printed at shutdown.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TextIO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode, format_span_id, format_trace_id

__all__ = ["ConsoleSpanExporter", "format_span"]

#: Attributes shown first, when present; others follow up to ``_MAX_ATTRIBUTES``.
_KEY_ATTRIBUTES = (
    "http.request.method",
    "http.route",
    "url.full",
    "http.response.status_code",
    "db.system.name",
    "db.query.text",
    "messaging.destination.name",
    "server.address",
    "error.type",
)
_MAX_ATTRIBUTES = 6
_MAX_VALUE_LENGTH = 80
_MAX_PENDING_TRACES = 1000
_MAX_REMEMBERED_DEPTHS = 10000


def format_span(span: ReadableSpan, depth: int = 0) -> str:
    """One line describing ``span``: tree indentation, name, kind, duration, status, ids."""
    duration = ""
    if span.start_time is not None and span.end_time is not None:
        duration = f"{(span.end_time - span.start_time) / 1e6:.1f} ms"
    status = span.status.status_code.name
    if span.status.status_code is StatusCode.ERROR and span.status.description:
        status += f" ({span.status.description})"
    attributes = dict(span.attributes or {})
    keys = [k for k in _KEY_ATTRIBUTES if k in attributes]
    keys += [k for k in attributes if k not in keys]
    shown = " ".join(f"{k}={_short(attributes[k])}" for k in keys[:_MAX_ATTRIBUTES])
    ids = (
        f"trace={format_trace_id(span.context.trace_id)[:8]} span={format_span_id(span.context.span_id)[:8]}"
    )
    kind = span.kind.name.removeprefix("SpanKind.")
    return f"{'  ' * depth}{span.name} [{kind}] {duration} {status} {ids} {shown}".rstrip()


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= _MAX_VALUE_LENGTH else text[: _MAX_VALUE_LENGTH - 1] + "…"


class ConsoleSpanExporter(SpanExporter):
    """Print finished traces to ``out`` (stderr by default) as indented trees."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._pending: OrderedDict[int, list[ReadableSpan]] = OrderedDict()
        self._depths: OrderedDict[int, int] = OrderedDict()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines: list[str] = []
        with self._lock:
            for span in spans:
                trace_id = span.context.trace_id
                parent = span.parent
                self._pending.setdefault(trace_id, []).append(span)
                if parent is not None and parent.span_id in self._depths:
                    lines.extend(self._take(trace_id, span, self._depths[parent.span_id] + 1))
                elif parent is None or parent.is_remote:
                    lines.extend(self._take(trace_id))
            while len(self._pending) > _MAX_PENDING_TRACES:
                lines.extend(self._take(next(iter(self._pending))))
        self._write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            lines = [line for trace_id in list(self._pending) for line in self._take(trace_id)]
        self._write(lines)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def _take(self, trace_id: int, root: ReadableSpan | None = None, depth: int = 0) -> list[str]:
        """Lines for ``root`` and its held-back descendants (the whole held trace without a root)."""
        spans = sorted(self._pending.get(trace_id, []), key=lambda s: s.start_time or 0)
        held = {s.context.span_id for s in spans}
        children: dict[int, list[ReadableSpan]] = {}
        roots = []
        for span in spans:
            if span.parent is not None and span.parent.span_id in held:
                children.setdefault(span.parent.span_id, []).append(span)
            else:
                roots.append(span)
        lines: list[str] = []
        taken: set[int] = set()
        stack = [(span, depth) for span in reversed([root] if root is not None else roots)]
        while stack:
            span, level = stack.pop()
            taken.add(span.context.span_id)
            lines.append(self._line(span, level))
            stack.extend((child, level + 1) for child in reversed(children.get(span.context.span_id, [])))
        remaining = [span for span in spans if span.context.span_id not in taken]
        if remaining:
            self._pending[trace_id] = remaining
        else:
            self._pending.pop(trace_id, None)
        return lines

    def _line(self, span: ReadableSpan, depth: int) -> str:
        self._depths[span.context.span_id] = depth
        while len(self._depths) > _MAX_REMEMBERED_DEPTHS:
            self._depths.popitem(last=False)
        return format_span(span, depth)

    def _write(self, lines: list[str]) -> None:
        if not lines:
            return
        out = self._out or sys.stderr
        out.write("\n".join(lines) + "\n")
        out.flush()
