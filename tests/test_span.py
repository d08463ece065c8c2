"""``tracekit.span()``: a span around a block (``with`` / ``async with``) or a function."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags

import tracekit
from tracekit.testing import SpanRecorder, capture_spans


class OutOfStock(Exception):
    pass


def span_id(span: trace.Span | ReadableSpan) -> int:
    context = span.get_span_context() if isinstance(span, trace.Span) else span.context
    assert context is not None
    return context.span_id


def parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def test_with_block_yields_the_current_span_and_records_it(spans: SpanRecorder) -> None:
    with tracekit.span(
        "reserve_inventory",
        kind=SpanKind.INTERNAL,
        attributes={"tracekit.warehouse": "ams-1"},
        sku="sku-7",
        quantity=2,
    ) as current:
        assert trace.get_current_span() is current
        assert current.is_recording()
        current.set_attribute("tracekit.reserved", True)
        current.add_event("stock checked", {"tracekit.remaining": 4})
    assert trace.get_current_span() is trace.INVALID_SPAN

    [span] = spans.spans
    assert span.name == "reserve_inventory"
    assert span.kind is SpanKind.INTERNAL
    assert span_id(span) == span_id(current)
    assert span.parent is None
    assert dict(span.attributes or {}) == {
        "tracekit.warehouse": "ams-1",
        "sku": "sku-7",
        "quantity": 2,
        "tracekit.reserved": True,
    }
    assert [(event.name, dict(event.attributes or {})) for event in span.events] == [
        ("stock checked", {"tracekit.remaining": 4})
    ]
    assert span.status.status_code is StatusCode.UNSET


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")

    __repr__ = __str__


def test_an_attribute_that_cannot_be_converted_is_left_out_and_the_span_kept(
    spans: SpanRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(3):  # one warning per call site, however often it runs
        with tracekit.span("charge", amount=Unprintable(), currency="EUR"):  # line A
            pass
    with tracekit.span("refund", amount=[Unprintable()], currency="USD"):  # line B
        pass

    assert [(span.name, dict(span.attributes or {})) for span in spans.spans] == [
        ("charge", {"currency": "EUR"}),
        ("charge", {"currency": "EUR"}),
        ("charge", {"currency": "EUR"}),
        ("refund", {"currency": "USD"}),
    ]
    warnings = [r.getMessage() for r in caplog.records if r.name == "tracekit"]
    assert len(warnings) == 2
    for warning, (name, kind) in zip(warnings, [("charge", "Unprintable"), ("refund", "list")], strict=True):
        assert warning.startswith(f"tracekit: attribute 'amount' of span '{name}' ({__file__}:")
        assert warning.endswith(
            f"has a value that cannot be converted ({kind} raised RuntimeError: no text for you); "
            "the span is kept without it"
        )
    # Nothing was caught as an internal error: later problems are still reported.
    with tracekit.span("later", amount=Unprintable()):
        pass
    assert len([r for r in caplog.records if r.name == "tracekit"]) == 3


def test_keyword_attributes_win_over_the_attributes_mapping(spans: SpanRecorder) -> None:
    with tracekit.span("charge", attributes={"currency": "USD", "tracekit.a": 1}, currency="EUR"):
        pass
    assert dict(spans.named("charge").attributes or {}) == {"currency": "EUR", "tracekit.a": 1}


def test_nested_blocks_and_kinds(spans: SpanRecorder) -> None:
    with tracekit.span("POST /checkout", kind=SpanKind.SERVER) as request:
        with tracekit.span("authorize_payment", kind=SpanKind.CLIENT):
            pass
        with tracekit.span("send_receipt", kind=SpanKind.PRODUCER):
            pass

    root = spans.named("POST /checkout")
    assert root.kind is SpanKind.SERVER
    assert span_id(root) == span_id(request)
    for name, kind in (("authorize_payment", SpanKind.CLIENT), ("send_receipt", SpanKind.PRODUCER)):
        child = spans.named(name)
        assert child.kind is kind
        assert parent_id(child) == span_id(root)
        assert child.context is not None
        assert root.context is not None
        assert child.context.trace_id == root.context.trace_id


def test_links(spans: SpanRecorder) -> None:
    upstream = SpanContext(0x1111, 0x2222, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with tracekit.span("settle batch", links=[Link(upstream, {"tracekit.batch.index": 3})]):
        pass
    [span] = spans.spans
    [link] = span.links
    assert link.context == upstream
    assert dict(link.attributes or {}) == {"tracekit.batch.index": 3}
    assert span.parent is None


def test_an_exception_leaving_the_block_is_recorded_and_propagates(spans: SpanRecorder) -> None:
    error = OutOfStock("sku-7 is sold out")
    with pytest.raises(OutOfStock) as raised, tracekit.span("reserve_inventory"):
        raise error
    assert raised.value is error

    [span] = spans.spans
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "sku-7 is sold out"
    assert span.attributes is not None
    assert span.attributes["error.type"] == f"{__name__}.OutOfStock"
    [event] = span.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == f"{__name__}.OutOfStock"
    assert event.attributes["exception.message"] == "sku-7 is sold out"
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_async_with(spans: SpanRecorder) -> None:
    async def main() -> int:
        async with tracekit.span("load cart", cart="c-1") as outer:
            await asyncio.sleep(0)
            async with tracekit.span("load prices"):
                await asyncio.sleep(0)
            return span_id(outer)

    outer_id = asyncio.run(main())
    assert span_id(spans.named("load cart")) == outer_id
    assert parent_id(spans.named("load prices")) == outer_id
    assert dict(spans.named("load cart").attributes or {}) == {"cart": "c-1"}


def test_cancellation_inside_async_with_is_not_an_error(spans: SpanRecorder) -> None:
    async def slow() -> None:
        async with tracekit.span("wait for stock"):
            await asyncio.sleep(10)

    async def main() -> None:
        task = asyncio.create_task(slow())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    [span] = spans.spans
    assert span.status.status_code is StatusCode.UNSET
    assert list(span.events) == []


def test_as_a_decorator_every_call_gets_its_own_span(spans: SpanRecorder) -> None:
    @tracekit.span("price cart", kind=SpanKind.INTERNAL, currency="EUR")
    def price(cart: list[int]) -> int:
        return sum(cart)

    @tracekit.span("fetch rates")
    async def rates() -> float:
        await asyncio.sleep(0)
        return 1.1

    @tracekit.span("line items")
    def items() -> Iterator[int]:
        yield 1
        yield 2

    assert price([1, 2]) == 3
    assert price([3]) == 3
    assert asyncio.run(rates()) == 1.1
    assert list(items()) == [1, 2]

    priced = [span for span in spans.spans if span.name == "price cart"]
    assert len(priced) == 2
    assert span_id(priced[0]) != span_id(priced[1])
    assert dict(priced[0].attributes or {}) == {
        "code.function.name": f"{__name__}.{price.__qualname__}",
        "code.file.path": __file__,
        "code.line.number": price.__wrapped__.__code__.co_firstlineno,  # type: ignore[attr-defined]
        "currency": "EUR",
    }
    assert price.__name__ == "price"
    assert spans.named("fetch rates").name == "fetch rates"
    assert spans.named("line items").name == "line items"


def test_the_same_block_object_can_be_entered_again(spans: SpanRecorder) -> None:
    block = tracekit.span("retry")
    with block as first:
        pass
    with block as second, block as nested:
        pass
    assert len({span_id(first), span_id(second), span_id(nested)}) == 3
    retries = [span for span in spans.spans if span.name == "retry"]
    assert len(retries) == 3
    assert parent_id(next(span for span in retries if span_id(span) == span_id(nested))) == span_id(second)


def test_without_configure_the_block_yields_a_harmless_non_recording_span() -> None:
    with tracekit.span("reserve_inventory", sku="x") as current:
        assert not current.is_recording()
        current.set_attribute("tracekit.ignored", 1)
        current.record_exception(ValueError("ignored"))
        assert not current.get_span_context().is_valid
    with pytest.raises(OutOfStock), tracekit.span("fails"):
        raise OutOfStock("still raised")


def test_inside_an_unsampled_trace_the_block_yields_the_unsampled_parent() -> None:
    with capture_spans(service_name="tests", sampler="parentbased_always_off") as recorder:
        with tracekit.span("POST /checkout") as root, tracekit.span("reserve_inventory") as child:
            assert child is root
            assert trace.get_current_span() is root
            assert isinstance(child, NonRecordingSpan)
            assert child.get_span_context().is_valid
            assert not child.get_span_context().trace_flags.sampled
        assert recorder.spans == []
