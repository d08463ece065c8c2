"""The console exporter prints each trace as an indented tree, one line per span."""

from __future__ import annotations

import io
import re

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags

import tracekit
from tracekit.exporters import ConsoleSpanExporter


def _tracer(out: io.StringIO) -> tuple[trace.Tracer, ConsoleSpanExporter]:
    exporter = ConsoleSpanExporter(out)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter


def _shape(output: str) -> list[str]:
    """Each line reduced to its indentation, name, kind and status."""
    shapes = []
    for line in output.splitlines():
        match = re.match(r"^( *)(\S.*?) \[(\w+)\] [\d.]+ ms (\w+)", line)
        assert match, line
        indent, name, kind, status = match.groups()
        shapes.append(f"{indent}{name} {kind} {status}")
    return shapes


def test_a_trace_prints_when_its_root_ends_in_start_order_indented_by_depth() -> None:
    out = io.StringIO()
    tracer, _ = _tracer(out)
    with tracer.start_as_current_span("POST /checkout/{cart_id}", kind=SpanKind.SERVER):
        with (
            tracer.start_as_current_span("reserve_inventory"),
            tracer.start_as_current_span("SELECT inventory", kind=SpanKind.CLIENT),
        ):
            pass
        assert out.getvalue() == ""
        with tracer.start_as_current_span("authorize_payment") as payment:
            payment.set_status(StatusCode.ERROR, "bank answered 502")
    assert _shape(out.getvalue()) == [
        "POST /checkout/{cart_id} SERVER UNSET",
        "  reserve_inventory INTERNAL UNSET",
        "    SELECT inventory CLIENT UNSET",
        "  authorize_payment INTERNAL ERROR",
    ]
    assert "ERROR (bank answered 502)" in out.getvalue()


def test_lines_carry_ids_and_key_attributes_first() -> None:
    out = io.StringIO()
    tracer, _ = _tracer(out)
    with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT, attributes={"zeta": 1}) as span:
        span.set_attribute("http.response.status_code", 502)
        span.set_attribute("http.request.method", "GET")
        ids = span.get_span_context()
    line = out.getvalue().strip()
    assert f"trace={ids.trace_id:032x}"[:14] in line
    assert f"span={ids.span_id:016x}"[:13] in line
    assert line.endswith("http.request.method=GET http.response.status_code=502 zeta=1")


def test_a_span_under_a_remote_parent_is_a_local_root() -> None:
    out = io.StringIO()
    tracer, _ = _tracer(out)
    remote = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, True, TraceFlags(1))
    with (
        tracer.start_as_current_span(
            "GET /orders", context=trace.set_span_in_context(NonRecordingSpan(remote))
        ),
        tracer.start_as_current_span("load"),
    ):
        pass
    assert _shape(out.getvalue()) == ["GET /orders INTERNAL UNSET", "  load INTERNAL UNSET"]
    assert "trace=4bf92f35" in out.getvalue()


def test_a_child_ending_after_its_root_prints_under_it_at_once() -> None:
    out = io.StringIO()
    tracer, _ = _tracer(out)
    with tracer.start_as_current_span("publish") as root:
        late = tracer.start_span("flush", context=trace.set_span_in_context(root))
    late.end()
    assert _shape(out.getvalue()) == ["publish INTERNAL UNSET", "  flush INTERNAL UNSET"]


def test_unfinished_traces_print_at_shutdown() -> None:
    out = io.StringIO()
    tracer, exporter = _tracer(out)
    root = tracer.start_span("never-ends")
    with tracer.start_as_current_span("child", context=trace.set_span_in_context(root)):
        pass
    assert out.getvalue() == ""
    exporter.shutdown()
    assert _shape(out.getvalue()) == ["child INTERNAL UNSET"]


def test_configure_with_console_prints_to_stderr(capsys) -> None:  # type: ignore[no-untyped-def]
    tracing = tracekit.configure(exporters=["console"], service_name="checkout")
    with trace.get_tracer("t").start_as_current_span("checkout"):
        pass
    tracing.force_flush()
    assert _shape(capsys.readouterr().err) == ["checkout INTERNAL UNSET"]


def test_children_held_back_print_under_a_late_parent() -> None:
    out = io.StringIO()
    tracer, _ = _tracer(out)
    with tracer.start_as_current_span("send order.created") as send:
        pass
    process = tracer.start_span("process order.created", context=trace.set_span_in_context(send))
    with tracer.start_as_current_span("send_confirmation_email", context=trace.set_span_in_context(process)):
        pass
    assert _shape(out.getvalue()) == ["send order.created INTERNAL UNSET"]
    process.end()
    assert _shape(out.getvalue()) == [
        "send order.created INTERNAL UNSET",
        "  process order.created INTERNAL UNSET",
        "    send_confirmation_email INTERNAL UNSET",
    ]
