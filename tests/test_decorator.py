"""``@tracekit.traced``: every function flavour, the span it makes, and what it must not change."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags

import tracekit
from tracekit import _state
from tracekit.testing import SpanRecorder, capture_spans

HERE = __file__


class PaymentDeclined(Exception):
    """The card issuer said no."""


def code_attributes(func: Any) -> dict[str, Any]:
    """The code.* attributes tracekit should put on the span of ``func`` (a traced function)."""
    original = inspect.unwrap(func)
    return {
        "code.function.name": f"{original.__module__}.{original.__qualname__}",
        "code.file.path": HERE,
        "code.line.number": original.__code__.co_firstlineno,
    }


def assert_ok(span: ReadableSpan) -> None:
    assert span.status.status_code is StatusCode.UNSET
    assert list(span.events) == []
    assert "error.type" not in (span.attributes or {})


def assert_child_of(child: ReadableSpan, parent: ReadableSpan) -> None:
    assert child.parent is not None
    assert parent.context is not None
    assert child.context is not None
    assert child.parent.span_id == parent.context.span_id
    assert child.context.trace_id == parent.context.trace_id


def duration(span: ReadableSpan) -> float:
    assert span.start_time is not None
    assert span.end_time is not None
    return (span.end_time - span.start_time) / 1e9


# --------------------------------------------------------------------------- plain functions


@tracekit.traced
def reserve_inventory(sku: str, quantity: int = 1) -> str:
    """Hold ``quantity`` of ``sku`` for this order."""
    return f"{sku}x{quantity}"


@tracekit.traced(
    name="authorize payment",
    kind=SpanKind.CLIENT,
    attributes={"payment.provider": "acme", "tracekit.retries": 2},
)
def authorize_payment(amount: float) -> bool:
    return amount < 1000


def test_bare_decorator_makes_one_internal_span_named_after_the_qualname(spans: SpanRecorder) -> None:
    assert reserve_inventory("sku-1", quantity=3) == "sku-1x3"

    [span] = spans.spans
    assert span.name == "reserve_inventory"
    assert span.kind is SpanKind.INTERNAL
    assert span.parent is None
    assert dict(span.attributes or {}) == code_attributes(reserve_inventory)
    assert_ok(span)
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "tracekit"


def test_name_kind_and_attributes_options(spans: SpanRecorder) -> None:
    assert authorize_payment(12.5) is True

    span = spans.named("authorize payment")
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes or {}) == {
        **code_attributes(authorize_payment),
        "payment.provider": "acme",
        "tracekit.retries": 2,
    }


def test_code_attributes_come_from_the_innermost_function_and_are_computed_once(spans: SpanRecorder) -> None:
    attributes = code_attributes(reserve_inventory)
    assert attributes["code.function.name"] == f"{__name__}.reserve_inventory"
    assert attributes["code.line.number"] == reserve_inventory.__wrapped__.__code__.co_firstlineno

    reserve_inventory("a")
    reserve_inventory("b")
    first, second = spans.spans
    assert dict(first.attributes or {}) == dict(second.attributes or {}) == attributes


def test_nested_calls_are_parent_and_child(spans: SpanRecorder) -> None:
    @tracekit.traced
    def checkout() -> str:
        reserve_inventory("sku-9")
        return "done"

    with tracekit.span("POST /checkout") as request:
        assert checkout() == "done"
        assert trace.get_current_span() is request

    root = spans.named("POST /checkout")
    outer = spans.named("test_nested_calls_are_parent_and_child.<locals>.checkout")
    inner = spans.named("reserve_inventory")
    assert_child_of(outer, root)
    assert_child_of(inner, outer)


def test_the_span_is_current_inside_the_function_and_not_after(spans: SpanRecorder) -> None:
    seen: list[trace.Span] = []

    @tracekit.traced
    def work() -> None:
        seen.append(trace.get_current_span())

    before = trace.get_current_span()
    work()
    assert trace.get_current_span() is before
    [span] = spans.spans
    assert seen[0].get_span_context().span_id == span.context.span_id  # type: ignore[union-attr]


# --------------------------------------------------------------------------- what must not change


def _plain(a: int, /, b: str, *args: int, c: float = 1.0, **kwargs: str) -> str:
    """plain doc"""
    return "plain"


async def _coroutine(order_id: str) -> str:
    """coroutine doc"""
    return order_id


def _generator(n: int) -> Iterator[int]:
    """generator doc"""
    yield from range(n)


async def _async_generator(n: int) -> AsyncIterator[int]:
    """async generator doc"""
    for i in range(n):
        yield i


@pytest.mark.parametrize("func", [_plain, _coroutine, _generator, _async_generator])
def test_metadata_and_function_kind_are_preserved(func: Any) -> None:
    wrapped = tracekit.traced(func)
    assert wrapped is not func
    assert wrapped.__wrapped__ is func
    assert wrapped.__name__ == func.__name__
    assert wrapped.__qualname__ == func.__qualname__
    assert wrapped.__doc__ == func.__doc__
    assert wrapped.__module__ == func.__module__
    assert inspect.signature(wrapped) == inspect.signature(func)
    assert inspect.iscoroutinefunction(wrapped) is inspect.iscoroutinefunction(func)
    assert inspect.isgeneratorfunction(wrapped) is inspect.isgeneratorfunction(func)
    assert inspect.isasyncgenfunction(wrapped) is inspect.isasyncgenfunction(func)


def test_a_positional_name_or_a_bad_kind_fails_at_decoration() -> None:
    with pytest.raises(TypeError, match=r"traced\(name=\.\.\.\)"):
        tracekit.traced("reserve")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="SpanKind"):
        tracekit.traced(kind="client")(_plain)  # type: ignore[call-overload]


# --------------------------------------------------------------------------- methods


class Checkout:
    def __init__(self, cart: str) -> None:
        self.cart = cart

    @tracekit.traced
    def reserve_inventory(self, sku: str) -> str:
        return f"{self.cart}:{sku}"

    @tracekit.traced
    @classmethod
    def traced_then_classmethod(cls, x: int) -> tuple[type, int]:
        return cls, x

    @classmethod
    @tracekit.traced
    def classmethod_then_traced(cls, x: int) -> tuple[type, int]:
        return cls, x

    @tracekit.traced
    @staticmethod
    def traced_then_staticmethod(x: int) -> int:
        return x + 1

    @staticmethod
    @tracekit.traced
    def staticmethod_then_traced(x: int) -> int:
        return x + 2


class FastCheckout(Checkout):
    pass


def test_methods_classmethods_and_staticmethods_in_either_order(spans: SpanRecorder) -> None:
    assert Checkout("c1").reserve_inventory("sku") == "c1:sku"
    assert FastCheckout.traced_then_classmethod(1) == (FastCheckout, 1)
    assert FastCheckout("c2").classmethod_then_traced(2) == (FastCheckout, 2)
    assert Checkout.traced_then_staticmethod(1) == 2
    assert Checkout("c3").staticmethod_then_traced(1) == 3

    assert [span.name for span in spans.spans] == [
        "Checkout.reserve_inventory",
        "Checkout.traced_then_classmethod",
        "Checkout.classmethod_then_traced",
        "Checkout.traced_then_staticmethod",
        "Checkout.staticmethod_then_traced",
    ]
    for span in spans.spans:
        assert span.attributes is not None
        assert span.attributes["code.function.name"] == f"{__name__}.{span.name}"
        assert span.attributes["code.file.path"] == HERE
        assert_ok(span)
    assert isinstance(inspect.getattr_static(Checkout, "traced_then_classmethod"), classmethod)
    assert isinstance(inspect.getattr_static(Checkout, "traced_then_staticmethod"), staticmethod)


# --------------------------------------------------------------------------- async functions


def test_an_async_span_covers_the_awaited_work(spans: SpanRecorder) -> None:
    @tracekit.traced
    async def charge_card(amount: int) -> str:
        await asyncio.sleep(0.05)
        reserve_inventory("inside")
        return f"charged {amount}"

    coroutine = charge_card(10)
    assert spans.spans == []  # nothing runs until the coroutine is awaited
    assert asyncio.run(coroutine) == "charged 10"

    outer = spans.named("test_an_async_span_covers_the_awaited_work.<locals>.charge_card")
    assert duration(outer) >= 0.05
    assert_child_of(spans.named("reserve_inventory"), outer)
    assert_ok(outer)


def test_concurrent_async_calls_keep_their_own_parents(spans: SpanRecorder) -> None:
    @tracekit.traced
    async def step(label: str) -> None:
        await asyncio.sleep(0.01)
        with tracekit.span(f"inner {label}"):
            await asyncio.sleep(0.01)

    async def main() -> None:
        await asyncio.gather(step("a"), step("b"), step("c"))

    asyncio.run(main())
    steps = [span for span in spans.spans if span.name.endswith("step")]
    assert len(steps) == 3
    for label in "abc":
        inner = spans.named(f"inner {label}")
        [parent] = [span for span in steps if span.context.span_id == inner.parent.span_id]  # type: ignore[union-attr]
        assert parent.parent is None


# --------------------------------------------------------------------------- generators


def test_a_generator_span_covers_the_whole_iteration(spans: SpanRecorder) -> None:
    @tracekit.traced
    def line_items(n: int) -> Iterator[int]:
        for i in range(n):
            reserve_inventory(f"sku-{i}")
            yield i

    iterator = line_items(3)
    assert spans.spans == []  # nothing runs before the first next()
    consumer_spans: list[trace.Span] = []
    items = []
    for item in iterator:
        items.append(item)
        consumer_spans.append(trace.get_current_span())
        time.sleep(0.02)
    assert items == [0, 1, 2]

    generator = spans.named("test_a_generator_span_covers_the_whole_iteration.<locals>.line_items")
    assert duration(generator) >= 0.06  # the consumer's pauses are inside the span
    children = [span for span in spans.spans if span.name == "reserve_inventory"]
    assert len(children) == 3
    for child in children:
        assert_child_of(child, generator)
    # The generator's span is current only while the generator's own code runs.
    assert all(span is trace.INVALID_SPAN for span in consumer_spans)
    assert_ok(generator)
    assert spans.spans[-1] is not None
    assert spans.spans[-1].name == generator.name


def test_a_generator_forwards_send_throw_and_its_return_value(spans: SpanRecorder) -> None:
    @tracekit.traced(record_result=True)
    def running_total() -> Iterator[int]:
        total = 0
        while True:
            try:
                value = yield total
            except KeyError:
                value = 100
            if value is None:
                return total
            total += value

    def outer() -> Iterator[int]:
        result = yield from running_total()
        yield result * 10

    plain = running_total()
    assert next(plain) == 0
    assert plain.send(5) == 5
    assert plain.throw(KeyError("x")) == 105
    with pytest.raises(StopIteration) as stopped:
        plain.send(None)
    assert stopped.value.value == 105
    assert list(outer()) == [0, 0]

    first, second = spans.spans
    assert first.attributes is not None
    assert first.attributes["tracekit.result"] == 105
    assert second.attributes is not None
    assert second.attributes["tracekit.result"] == 0
    assert_ok(first)


def test_a_generator_closed_early_ends_its_span_without_error(spans: SpanRecorder) -> None:
    cleaned_up: list[bool] = []

    @tracekit.traced
    def endless() -> Iterator[int]:
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            cleaned_up.append(trace.get_current_span().is_recording())

    for item in endless():
        if item == 2:
            break
    iterator = endless()
    next(iterator)
    iterator.close()

    first, second = spans.spans
    for span in (first, second):
        assert span.name.endswith("endless")
        assert span.end_time is not None
        assert_ok(span)
    assert cleaned_up == [True, True]  # the generator's finally ran inside its span


def test_a_generator_that_is_never_started_makes_no_span(spans: SpanRecorder) -> None:
    iterator = tracekit.traced(_generator)(3)
    iterator.close()
    del iterator
    assert spans.spans == []


def test_a_failing_generator_records_the_error(spans: SpanRecorder) -> None:
    @tracekit.traced
    def flaky() -> Iterator[int]:
        yield 1
        raise PaymentDeclined("card expired")

    iterator = flaky()
    assert next(iterator) == 1
    with pytest.raises(PaymentDeclined, match="card expired"):
        next(iterator)

    [span] = spans.spans
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "card expired"
    assert span.attributes is not None
    assert span.attributes["error.type"] == f"{__name__}.PaymentDeclined"


def test_an_exception_thrown_into_a_generator_and_not_handled_is_an_error(spans: SpanRecorder) -> None:
    iterator = tracekit.traced(_generator)(5)
    next(iterator)
    with pytest.raises(PaymentDeclined):
        iterator.throw(PaymentDeclined("stop"))
    [span] = spans.spans
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == f"{__name__}.PaymentDeclined"


# --------------------------------------------------------------------------- async generators


def test_an_async_generator_span_covers_the_whole_iteration(spans: SpanRecorder) -> None:
    @tracekit.traced
    async def stream(n: int) -> AsyncIterator[int]:
        for i in range(n):
            await asyncio.sleep(0)
            reserve_inventory(f"sku-{i}")
            yield i

    async def main() -> tuple[list[int], list[trace.Span]]:
        items, outside = [], []
        async for item in stream(3):
            items.append(item)
            outside.append(trace.get_current_span())
            await asyncio.sleep(0.02)
        return items, outside

    items, outside = asyncio.run(main())
    assert items == [0, 1, 2]
    generator = spans.named("test_an_async_generator_span_covers_the_whole_iteration.<locals>.stream")
    assert duration(generator) >= 0.06
    for child in [span for span in spans.spans if span.name == "reserve_inventory"]:
        assert_child_of(child, generator)
    assert all(span is trace.INVALID_SPAN for span in outside)
    assert_ok(generator)


def test_an_async_generator_forwards_asend_and_athrow_and_closes_early(spans: SpanRecorder) -> None:
    closed_inside: list[bool] = []

    @tracekit.traced
    async def accumulator() -> AsyncIterator[int]:
        total = 0
        try:
            while True:
                try:
                    value = yield total
                except KeyError:
                    value = 1000
                total += value or 0
        finally:
            closed_inside.append(trace.get_current_span().is_recording())

    async def main() -> list[int]:
        gen = accumulator()
        seen = [await gen.asend(None), await gen.asend(5), await gen.athrow(KeyError("k"))]
        await gen.aclose()
        return seen

    assert asyncio.run(main()) == [0, 5, 1005]
    [span] = spans.spans
    assert_ok(span)
    assert closed_inside == [True]


def test_a_failing_async_generator_records_the_error(spans: SpanRecorder) -> None:
    @tracekit.traced
    async def broken() -> AsyncIterator[int]:
        yield 1
        raise PaymentDeclined("gateway timeout")

    async def main() -> list[int]:
        return [item async for item in broken()]

    with pytest.raises(PaymentDeclined):
        asyncio.run(main())
    [span] = spans.spans
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "gateway timeout"


def test_async_generators_work_when_tracing_is_not_configured() -> None:
    wrapped = tracekit.traced(_async_generator)

    async def main() -> list[int]:
        gen = wrapped(4)
        first = await gen.asend(None)
        rest = [item async for item in gen]
        return [first, *rest]

    assert asyncio.run(main()) == [0, 1, 2, 3]


# --------------------------------------------------------------------------- exceptions


def test_an_escaping_exception_is_recorded_and_re_raised_unchanged(spans: SpanRecorder) -> None:
    error = PaymentDeclined("insufficient funds")

    @tracekit.traced
    def charge() -> None:
        raise error

    with pytest.raises(PaymentDeclined) as raised:
        charge()
    assert raised.value is error
    innermost = traceback.extract_tb(raised.value.__traceback__)[-1]
    assert innermost.name == "charge"
    assert innermost.line == "raise error"

    [span] = spans.spans
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "insufficient funds"
    assert span.attributes is not None
    assert span.attributes["error.type"] == f"{__name__}.PaymentDeclined"
    [event] = span.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == f"{__name__}.PaymentDeclined"
    assert event.attributes["exception.message"] == "insufficient funds"
    stacktrace = str(event.attributes["exception.stacktrace"])
    assert "raise error" in stacktrace
    assert stacktrace.rstrip().endswith("PaymentDeclined: insufficient funds")
    assert "exception.escaped" not in event.attributes


def test_builtin_exceptions_have_their_plain_name_and_an_empty_message_falls_back(
    spans: SpanRecorder,
) -> None:
    @tracekit.traced
    def lookup() -> None:
        raise KeyError

    with pytest.raises(KeyError):
        lookup()
    [span] = spans.spans
    assert span.attributes is not None
    assert span.attributes["error.type"] == "KeyError"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "KeyError"


def test_an_async_exception_is_recorded(spans: SpanRecorder) -> None:
    @tracekit.traced
    async def capture() -> None:
        await asyncio.sleep(0)
        raise PaymentDeclined("do not honour")

    with pytest.raises(PaymentDeclined):
        asyncio.run(capture())
    [span] = spans.spans
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == f"{__name__}.PaymentDeclined"


def test_cancellation_is_not_an_error(spans: SpanRecorder) -> None:
    started = asyncio.Event

    @tracekit.traced
    async def slow_payment(ready: asyncio.Event) -> None:
        ready.set()
        await asyncio.sleep(10)

    async def main() -> None:
        ready = started()
        task = asyncio.create_task(slow_payment(ready))
        await ready.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    [span] = spans.spans
    assert span.end_time is not None
    assert_ok(span)


def test_stop_iteration_is_not_an_error(spans: SpanRecorder) -> None:
    @tracekit.traced
    def next_item(iterator: Iterator[int]) -> int:
        return next(iterator)

    with pytest.raises(StopIteration):
        next_item(iter([]))
    [span] = spans.spans
    assert_ok(span)


# --------------------------------------------------------------------------- record_args / record_result


def test_record_args_records_bound_arguments_with_defaults_but_never_secrets(spans: SpanRecorder) -> None:
    class Gateway:
        def __repr__(self) -> str:
            return "<Gateway acme>"

    class Payments:
        @tracekit.traced(record_args=True, record_result=True)
        def charge(
            self,
            order_id: str,
            amount: float,
            gateway: Gateway,
            api_key: str,
            *items: str,
            currency: str = "EUR",
            **options: Any,
        ) -> dict[str, int]:
            return {"status": 201}

    result = Payments().charge(
        "o-1",
        9.5,
        Gateway(),
        "k-123",
        "sku-1",
        "sku-2",
        userPassword="hunter2",
        AuthHeader="Bearer x",
        retry=True,
    )
    assert result == {"status": 201}
    [span] = spans.spans
    recorded = {k: v for k, v in (span.attributes or {}).items() if k.startswith("tracekit.")}
    assert recorded == {
        "tracekit.arg.order_id": "o-1",
        "tracekit.arg.amount": 9.5,
        "tracekit.arg.gateway": "<Gateway acme>",
        "tracekit.arg.items": ("sku-1", "sku-2"),
        "tracekit.arg.currency": "EUR",
        "tracekit.arg.retry": True,
        "tracekit.result": "{'status': 201}",
    }
    values = repr(span.attributes)
    for secret in ("k-123", "hunter2", "Bearer"):
        assert secret not in values


def test_record_args_with_names_records_only_those_and_never_a_secret(
    spans: SpanRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="tracekit"):

        @tracekit.traced(record_args=("order_id", "client_secret"))
        def refund(order_id: str, amount: int, client_secret: str) -> None:
            return None

    assert [r.getMessage() for r in caplog.records] == [
        f"tracekit: record_args of {refund.__qualname__} names client_secret; "
        "names that look like secrets are never recorded"
    ]
    refund("o-2", 5, client_secret="s3cr3t")

    @tracekit.traced(record_args="amount")
    def capture(order_id: str, amount: int) -> None:
        return None

    capture("o-3", amount=7)
    first, second = spans.spans
    assert {k: v for k, v in (first.attributes or {}).items() if k.startswith("tracekit.")} == {
        "tracekit.arg.order_id": "o-2"
    }
    assert {k: v for k, v in (second.attributes or {}).items() if k.startswith("tracekit.")} == {
        "tracekit.arg.amount": 7
    }


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "db_passwd",
        "webhook_secret",
        "refresh_token",
        "api_key",
        "stripeApiKey",
        "authorization",
        "auth",
        "credentials",
        "private_key",
        "PASSWORD",
    ],
)
def test_secret_looking_names_are_never_recorded(spans: SpanRecorder, name: str) -> None:
    @tracekit.traced(record_args=True)
    def login(**kwargs: str) -> None:
        return None

    login(**{name: "do-not-record", "user": "ada"})
    [span] = spans.spans
    recorded = {k: v for k, v in (span.attributes or {}).items() if k.startswith("tracekit.")}
    assert recorded == {"tracekit.arg.user": "ada"}


def test_a_record_args_name_that_is_not_a_parameter_fails_at_decoration() -> None:
    with pytest.raises(TypeError, match="record_args names amont, which is not a parameter of"):

        @tracekit.traced(record_args=("amont",))
        def capture(amount: int) -> None:
            return None


@pytest.mark.parametrize(
    "limit_setting", ["span_attribute_value_length_limit", "attribute_value_length_limit"]
)
def test_recorded_values_are_cut_by_the_attribute_length_limit(
    limit_setting: str, caplog: pytest.LogCaptureFixture
) -> None:
    def summarize(cart: list[object], note: str) -> object:
        return {"lines": cart}

    recording = tracekit.traced(record_args=True, record_result=True)(summarize)
    with capture_spans(service_name="tests", **{limit_setting: 12}) as recorder:
        with caplog.at_level(logging.WARNING, logger="opentelemetry"):
            tracekit.traced(summarize)([], note="")
            baseline = len(caplog.records)  # the long code.* values, cut by the SDK
            recording([1, "two", 3.0, None] * 10, note="leave at the door, ring twice")
        span = recorder.spans[-1]
    assert span.attributes is not None
    assert span.attributes["tracekit.arg.cart"] == repr([1, "two", 3.0, None] * 10)[:12]
    assert span.attributes["tracekit.arg.note"] == "leave at the"
    assert span.attributes["tracekit.result"] == "{'lines': [1"
    # Cut by tracekit, so the SDK has nothing more to warn about for each recorded value.
    assert len(caplog.records) == 2 * baseline


def test_without_a_limit_reprs_are_recorded_whole(spans: SpanRecorder) -> None:
    @tracekit.traced(record_args=True)
    def summarize(cart: list[object]) -> None:
        return None

    summarize([None] * 100)
    [span] = spans.spans
    assert span.attributes is not None
    assert span.attributes["tracekit.arg.cart"] == repr([None] * 100)


def test_argument_recording_costs_nothing_when_the_call_does_not_bind(spans: SpanRecorder) -> None:
    @tracekit.traced(record_args=True)
    def one(x: int) -> int:
        return x

    with pytest.raises(TypeError):
        one(1, 2)  # type: ignore[call-arg]
    [span] = spans.spans
    assert not any(k.startswith("tracekit.arg.") for k in span.attributes or {})
    assert span.attributes is not None
    assert span.attributes["error.type"] == "TypeError"


# --------------------------------------------------------------------------- configure() lifecycle


def test_decorated_before_configure_then_configured_then_shut_down() -> None:
    @tracekit.traced
    def confirm_order(order_id: str) -> str:
        return f"confirmed {order_id}"

    assert confirm_order("o-1") == "confirmed o-1"  # not configured: plain call

    with capture_spans(service_name="tests") as recorder:
        assert confirm_order("o-2") == "confirmed o-2"
        [span] = recorder.spans
        assert (
            span.name
            == "test_decorated_before_configure_then_configured_then_shut_down.<locals>.confirm_order"
        )

    assert confirm_order("o-3") == "confirmed o-3"  # shut down: plain call again
    with capture_spans(service_name="tests") as recorder:
        confirm_order("o-4")
        assert len(recorder.spans) == 1


def test_disabled_tracing_makes_no_spans_and_changes_nothing() -> None:
    calls: list[trace.Span] = []

    @tracekit.traced
    def work() -> int:
        calls.append(trace.get_current_span())
        return 7

    with capture_spans(disabled=True) as recorder:
        assert work() == 7
        assert recorder.spans == []
    assert calls == [trace.INVALID_SPAN]


def test_an_internal_error_never_reaches_the_caller(
    spans: SpanRecorder, monkeypatch: pytest.MonkeyPatch, guarded_errors: list[tuple[str, BaseException]]
) -> None:
    def broken_start_span(*args: Any, **kwargs: Any) -> trace.Span:
        raise RuntimeError("tracer exploded")

    monkeypatch.setattr(_state.tracer, "start_span", broken_start_span)
    assert reserve_inventory("sku") == "skux1"
    assert [(name, str(exc)) for name, exc in guarded_errors] == [("manual spans", "tracer exploded")]
    guarded_errors.clear()


# --------------------------------------------------------------------------- unsampled traces


def _local_parent(sampled: bool, remote: bool = False) -> NonRecordingSpan:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    return NonRecordingSpan(SpanContext(0xABC, 0xDEF, is_remote=remote, trace_flags=flags))


def _call_inside(parent: trace.Span, func: Any) -> Any:
    token = otel_context.attach(trace.set_span_in_context(parent))
    try:
        return func()
    finally:
        otel_context.detach(token)


def test_inside_an_unsampled_local_parent_no_span_is_made_and_the_trace_stays_unsampled() -> None:
    seen: list[trace.Span] = []
    api_spans: list[trace.Span] = []

    @tracekit.traced
    def reprice() -> None:
        seen.append(trace.get_current_span())
        with trace.get_tracer("other-library").start_as_current_span("library work") as inner:
            api_spans.append(inner)

    with capture_spans(service_name="tests", sampler="parentbased_always_off") as recorder:
        with tracekit.span("POST /checkout") as root:
            assert not root.is_recording()
            reprice()
            reprice()
        assert recorder.spans == []

    # No child was made: the function ran in the unsampled parent's own context ...
    assert seen == [root, root]
    # ... so spans made deeper down still join the same unsampled trace.
    root_context = root.get_span_context()
    for inner in api_spans:
        context = inner.get_span_context()
        assert not inner.is_recording()
        assert context.trace_id == root_context.trace_id
        assert not context.trace_flags.sampled


def test_a_sampler_that_is_not_parent_based_still_decides_for_children_of_unsampled_parents() -> None:
    parent = _local_parent(sampled=False)
    with capture_spans(service_name="tests", sampler="always_on") as recorder:
        _call_inside(parent, lambda: reserve_inventory("x"))
        [span] = recorder.spans
    assert span.name == "reserve_inventory"
    assert span.parent is not None
    assert span.parent.span_id == 0xDEF
    assert span.context is not None
    assert span.context.trace_id == 0xABC


def test_inside_an_unsampled_remote_parent_no_span_is_made_either() -> None:
    # The upstream service decided not to sample; its context is current (a consumer, a task).
    parent = _local_parent(sampled=False, remote=True)
    seen: list[trace.Span] = []
    headers: dict[str, str] = {}

    @tracekit.traced
    def handle() -> None:
        seen.append(trace.get_current_span())
        with tracekit.span("inner"), trace.get_tracer("other-library").start_as_current_span("library work"):
            seen.append(trace.get_current_span())
            propagate.inject(headers)

    with capture_spans(service_name="tests") as recorder:  # parentbased_always_on, the default
        _call_inside(parent, handle)
        _call_inside(parent, handle)
        assert recorder.spans == []
    assert seen[0] is parent  # no child was made for the decorated call
    assert seen[2] is parent
    for inner in (seen[1], seen[3]):
        context = inner.get_span_context()
        assert not inner.is_recording()
        assert (context.trace_id, context.trace_flags.sampled) == (0xABC, False)
    # Downstream still gets the trace, unsampled.
    assert headers["traceparent"].startswith(f"00-{0xABC:032x}-")
    assert headers["traceparent"].endswith("-00")


def test_the_remote_shortcut_needs_both_unsampled_parent_samplers_to_drop() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased

    from tracekit._sampling import drops_children_of_unsampled_parents

    def drops(sampler: ParentBased) -> tuple[bool, bool]:
        return drops_children_of_unsampled_parents(TracerProvider(sampler=sampler).get_tracer("t"))

    assert drops(ParentBased(ALWAYS_ON)) == (True, True)
    assert drops(ParentBased(ALWAYS_ON, remote_parent_not_sampled=ALWAYS_ON)) == (True, False)
    assert drops(ParentBased(ALWAYS_ON, local_parent_not_sampled=ALWAYS_ON)) == (False, False)
    assert drops(ParentBased(ALWAYS_OFF, remote_parent_not_sampled=ALWAYS_OFF)) == (True, True)


def test_a_sampled_local_parent_gets_a_recorded_child(spans: SpanRecorder) -> None:
    _call_inside(_local_parent(sampled=True), lambda: reserve_inventory("x"))
    [span] = spans.spans
    assert span.parent is not None
    assert span.parent.span_id == 0xDEF


def test_sdk_span_metrics_switch_the_shortcut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK's own metrics count dropped spans too; skipping the child would change them.
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    parent = _local_parent(sampled=False)
    seen: list[trace.Span] = []

    @tracekit.traced
    def handle() -> None:
        seen.append(trace.get_current_span())

    with capture_spans(service_name="tests") as recorder:
        _call_inside(parent, handle)
        assert recorder.spans == []
    [child] = seen
    assert child is not parent
    assert child.get_span_context().trace_id == 0xABC
