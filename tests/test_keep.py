"""Keeping the failing and the slow traces a low head sampling ratio would lose (opt-in).

``TRACEKIT_KEEP_ERRORS`` / ``TRACEKIT_KEEP_SLOW_MS`` (``keep_errors=`` / ``keep_slow_ms=``):
an unsampled local trace is recorded and held until its local root ends, then exported
whole (copies marked sampled, with ``tracekit.sampling.kept``) if one of its spans failed
or the local root was slow, and discarded otherwise; at most ``TRACEKIT_KEEP_BUFFER_SPANS``
spans are held. Everything here runs on the real SDK provider that ``configure()`` builds.
"""

from __future__ import annotations

import contextlib
import contextvars
import gc
import json
import logging
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Span, SpanKind, StatusCode, TraceFlags

import tracekit
from launcher_support import environment, run, tracekit_command
from tracekit._keep import KEPT_ATTRIBUTE, KeepProcessor
from tracekit.testing import SpanRecorder, capture_spans

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
OTHER_PARENT = "b7ad6b7169203331"

#: A local root's trace flags: tracekit's root ids are random (W3C level 2), not sampled.
HELD_FLAGS = TraceFlags(0x02)
#: Its exported copy: sampled as well.
KEPT_FLAGS = TraceFlags(0x03)
_MS = 1_000_000


# --------------------------------------------------------------------------- helpers


def keep_processor(tracing: tracekit.Tracing) -> KeepProcessor:
    """The KeepProcessor configure() put in front of the export processors."""
    assert tracing.provider is not None
    processors = list(tracing.provider._active_span_processor._span_processors)
    found = [processor for processor in processors if isinstance(processor, KeepProcessor)]
    assert len(found) == 1, processors
    assert processors.index(found[0]) == 0, processors  # it must see a root before the batch processors
    return found[0]


def keeping(**overrides: Any) -> Any:
    """capture_spans at ratio 0 with keep on (the keywords given win), integrations off."""
    settings: dict[str, Any] = {
        "sample_ratio": 0.0,
        "keep_errors": True,
        "keep_slow_ms": 100,
        "instrument": False,
    }
    settings.update(overrides)
    return capture_spans(service_name="keep-tests", **settings)


@contextlib.contextmanager
def raised(error: type[BaseException]) -> Iterator[None]:
    """The block (a span block here) must raise ``error``; it stops here."""
    with pytest.raises(error):
        yield


def ids(span: Span | ReadableSpan) -> tuple[int, int]:
    context = span.get_span_context()
    assert context is not None
    return context.trace_id, context.span_id


def parent_ids(span: ReadableSpan) -> tuple[int, int] | None:
    return None if span.parent is None else (span.parent.trace_id, span.parent.span_id)


def check_kept(span: ReadableSpan, reason: str, attributes: dict[str, Any] | None = None) -> None:
    """An exported copy: marked sampled, carrying the reason and exactly ``attributes`` otherwise."""
    assert span.context is not None
    assert span.context.trace_flags.sampled
    assert not span.context.is_remote
    assert dict(span.attributes or {}) == {**(attributes or {}), KEPT_ATTRIBUTE: reason}


def tracer_of(recorder: SpanRecorder) -> trace.Tracer:
    assert recorder.tracing.provider is not None
    return recorder.tracing.provider.get_tracer("tests.keep")


def timed_root(recorder: SpanRecorder, name: str, nanoseconds: int, *, child_fails: bool = False) -> None:
    """A root lasting exactly ``nanoseconds``, with one child (ERROR when ``child_fails``)."""
    tracer = tracer_of(recorder)
    start = 1_700_000_000_000_000_000
    root = tracer.start_span(name, start_time=start)
    child = tracer.start_span(f"{name}.step", trace.set_span_in_context(root), start_time=start + 1)
    if child_fails:
        child.set_status(StatusCode.ERROR, "step failed")
    child.end(end_time=start + 2)
    root.end(end_time=start + nanoseconds)


# --------------------------------------------------------------------------- what is kept


def test_a_normal_unsampled_trace_is_recorded_held_and_discarded() -> None:
    with keeping() as recorder:
        processor = keep_processor(recorder.tracing)
        with tracekit.span("checkout", kind=SpanKind.SERVER) as root:
            assert root.is_recording()
            assert root.get_span_context().trace_flags == HELD_FLAGS
            with tracekit.span("load_cart") as child:
                assert child.is_recording()
                assert child.get_span_context().trace_flags == HELD_FLAGS
            assert processor.held_spans == 1
        assert processor.held_spans == 0
        assert recorder.spans == []
        stats = tracekit.stats()
        assert (stats.kept_traces, stats.keep_evicted_traces, stats.exported) == (0, 0, 0)


def test_a_failing_trace_is_exported_whole_marked_error() -> None:
    with keeping() as recorder:
        with tracekit.span("checkout", kind=SpanKind.SERVER) as root:
            with tracekit.span("load_cart") as load:
                pass
            with raised(ValueError), tracekit.span("charge") as charge:
                with tracekit.span("call_bank", kind=SpanKind.CLIENT) as call:
                    pass
                raise ValueError("card declined")
            held = [root, load, charge, call]
            assert all(span.get_span_context().trace_flags == HELD_FLAGS for span in held)
        spans = recorder.spans
        assert [span.name for span in spans] == ["load_cart", "call_bank", "charge", "checkout"]
        load_out, call_out, charge_out, root_out = spans
        # the very spans that were recorded, ids unchanged
        assert [ids(span) for span in spans] == [ids(load), ids(call), ids(charge), ids(root)]
        assert {span.context.trace_flags for span in spans} == {KEPT_FLAGS}
        assert root_out.parent is None
        assert parent_ids(load_out) == ids(root)
        assert parent_ids(charge_out) == ids(root)
        assert parent_ids(call_out) == ids(charge)
        assert not any(span.parent.is_remote for span in (load_out, charge_out, call_out))
        assert [span.kind for span in spans] == [
            SpanKind.INTERNAL,
            SpanKind.CLIENT,
            SpanKind.INTERNAL,
            SpanKind.SERVER,
        ]
        check_kept(load_out, "error")
        check_kept(call_out, "error")
        check_kept(charge_out, "error", {"error.type": "ValueError"})
        check_kept(root_out, "error")
        assert charge_out.status.status_code is StatusCode.ERROR
        assert charge_out.status.description == "card declined"
        assert [span.status.status_code for span in (load_out, call_out, root_out)] == [StatusCode.UNSET] * 3
        (event,) = charge_out.events
        assert event.name == "exception"
        assert event.attributes is not None
        assert (event.attributes["exception.type"], event.attributes["exception.message"]) == (
            "ValueError",
            "card declined",
        )
        assert [len(span.events) for span in (load_out, call_out, root_out)] == [0, 0, 0]
        stats = tracekit.stats()
        assert (stats.kept_traces, stats.keep_evicted_traces, stats.exported) == (1, 0, 4)


def test_a_root_that_fails_itself_is_kept() -> None:
    with keeping() as recorder:
        with raised(KeyError), tracekit.span("consume", kind=SpanKind.CONSUMER) as root:
            with tracekit.span("decode"):
                pass
            raise KeyError("order_id")
        decode, consume = recorder.spans
        assert (decode.name, consume.name) == ("decode", "consume")
        assert ids(consume) == ids(root)
        assert parent_ids(decode) == ids(root)
        check_kept(decode, "error")
        check_kept(consume, "error", {"error.type": "KeyError"})
        assert consume.status.status_code is StatusCode.ERROR
        assert consume.kind is SpanKind.CONSUMER


def test_a_slow_trace_is_exported_whole_marked_slow() -> None:
    with keeping(keep_slow_ms=100) as recorder:
        with tracekit.span("report", kind=SpanKind.SERVER) as root:
            with tracekit.span("query") as query:
                pass
            _sleep_at_least(root, 0.1)
        query_out, root_out = recorder.spans
        assert (query_out.name, root_out.name) == ("query", "report")
        assert (ids(query_out), ids(root_out)) == (ids(query), ids(root))
        assert parent_ids(query_out) == ids(root)
        assert root_out.parent is None
        check_kept(query_out, "slow")
        check_kept(root_out, "slow")
        assert root_out.context.trace_flags == KEPT_FLAGS
        assert (query_out.status.status_code, root_out.status.status_code) == (StatusCode.UNSET,) * 2
        assert root_out.end_time - root_out.start_time >= 100 * _MS
        assert tracekit.stats().kept_traces == 1


def _sleep_at_least(span: Span, seconds: float) -> None:
    """Wait until ``span`` has lasted ``seconds`` by the span's own clock (time_ns)."""
    started = span.start_time  # type: ignore[attr-defined]
    deadline = time.monotonic() + seconds + 5
    while time.time_ns() - started < seconds * 1e9 + _MS:
        assert time.monotonic() < deadline
        time.sleep(seconds / 4)


def test_failing_and_slow_is_marked_error() -> None:
    with keeping(keep_slow_ms=100) as recorder:
        with tracekit.span("report") as root:
            with raised(RuntimeError), tracekit.span("query"):
                raise RuntimeError("timeout")
            _sleep_at_least(root, 0.1)
        query, report = recorder.spans
        check_kept(query, "error", {"error.type": "RuntimeError"})
        check_kept(report, "error")
        assert tracekit.stats().kept_traces == 1


def test_the_slow_threshold_is_the_local_root_duration_inclusive() -> None:
    with keeping(keep_errors=False, keep_slow_ms=100) as recorder:
        timed_root(recorder, "just-under", 100 * _MS - 1)
        assert recorder.spans == []
        timed_root(recorder, "exactly", 100 * _MS)
        step, root = recorder.spans
        assert (step.name, root.name) == ("exactly.step", "exactly")
        check_kept(step, "slow")
        check_kept(root, "slow")
        assert (root.start_time, root.end_time) == (1_700_000_000_000_000_000, 1_700_000_000_100_000_000)


def test_keep_errors_alone_does_not_keep_slow_traces() -> None:
    with keeping(keep_errors=True, keep_slow_ms=None) as recorder:
        assert recorder.tracing.settings.keep_slow_ms is None
        timed_root(recorder, "slow", 60_000 * _MS)
        assert recorder.spans == []
        timed_root(recorder, "failing", 1 * _MS, child_fails=True)
        step, root = recorder.spans
        assert (step.name, root.name) == ("failing.step", "failing")
        check_kept(step, "error")
        check_kept(root, "error")
        assert step.status.status_code is StatusCode.ERROR
        assert step.status.description == "step failed"
        assert tracekit.stats().kept_traces == 1


def test_keep_slow_alone_does_not_keep_failing_traces() -> None:
    with keeping(keep_errors=False, keep_slow_ms=100) as recorder:
        timed_root(recorder, "failing", 1 * _MS, child_fails=True)
        with raised(ValueError), tracekit.span("failing-too"):
            raise ValueError("fast failure")
        assert recorder.spans == []
        timed_root(recorder, "slow", 250 * _MS)
        step, root = recorder.spans
        assert (step.name, root.name) == ("slow.step", "slow")
        check_kept(step, "slow")
        check_kept(root, "slow")
        assert tracekit.stats().kept_traces == 1


def test_a_trace_is_judged_when_its_local_root_ends_not_before() -> None:
    with keeping() as recorder:
        processor = keep_processor(recorder.tracing)
        with tracekit.span("job") as root:
            with raised(OSError), tracekit.span("write"):
                raise OSError("disk full")
            assert processor.held_spans == 1
            assert recorder.spans == []  # a flush does not export a held trace
            with tracekit.span("cleanup"):
                pass
            assert processor.held_spans == 2
        assert processor.held_spans == 0
        assert [span.name for span in recorder.spans] == ["write", "cleanup", "job"]
        assert {parent_ids(span) for span in recorder.spans[:2]} == {ids(root)}


def test_traces_held_at_shutdown_are_discarded() -> None:
    with keeping() as recorder:
        processor = keep_processor(recorder.tracing)
        tracer = tracer_of(recorder)
        root = tracer.start_span("never-ends")
        child = tracer.start_span("failed", trace.set_span_in_context(root))
        child.set_status(StatusCode.ERROR)
        child.end()
        assert processor.held_spans == 1
    assert processor.held_spans == 0
    stats = tracekit.stats()
    assert (stats.kept_traces, stats.exported) == (0, 0)


# --------------------------------------------------------------------------- remote parents, propagation


def _remote(flags: str, parent: str = PARENT) -> otel_context.Context:
    return propagate.extract({"traceparent": f"00-{TRACE}-{parent}-{flags}"})


def test_under_an_unsampled_remote_parent_the_local_root_is_the_span_under_it() -> None:
    with keeping() as recorder:
        processor = keep_processor(recorder.tracing)
        token = otel_context.attach(_remote("00"))
        try:
            with raised(TimeoutError), tracekit.span("GET /orders", kind=SpanKind.SERVER) as root:
                assert root.get_span_context().trace_flags == TraceFlags(0x00)
                with tracekit.span("fetch") as fetch:
                    pass
                assert processor.held_spans == 1
                raise TimeoutError("upstream timed out")
            assert processor.held_spans == 0
        finally:
            otel_context.detach(token)
        fetch_out, root_out = recorder.spans
        assert (fetch_out.name, root_out.name) == ("fetch", "GET /orders")
        assert (ids(fetch_out), ids(root_out)) == (ids(fetch), ids(root))
        assert f"{root_out.context.trace_id:032x}" == TRACE
        assert root_out.parent is not None
        assert root_out.parent.is_remote
        assert (f"{root_out.parent.trace_id:032x}", f"{root_out.parent.span_id:016x}") == (TRACE, PARENT)
        assert parent_ids(fetch_out) == ids(root)
        assert not fetch_out.parent.is_remote
        assert {span.context.trace_flags for span in (fetch_out, root_out)} == {TraceFlags(0x01)}
        check_kept(fetch_out, "error")
        check_kept(root_out, "error", {"error.type": "TimeoutError"})
        assert root_out.kind is SpanKind.SERVER


def test_under_an_unsampled_remote_parent_a_normal_request_is_discarded() -> None:
    with keeping() as recorder:
        token = otel_context.attach(_remote("00"))
        try:
            with tracekit.span("GET /orders", kind=SpanKind.SERVER), tracekit.span("fetch"):
                pass
        finally:
            otel_context.detach(token)
        assert recorder.spans == []
        assert keep_processor(recorder.tracing).held_spans == 0


def test_under_a_sampled_remote_parent_nothing_is_held_or_marked() -> None:
    with keeping() as recorder:
        processor = keep_processor(recorder.tracing)
        token = otel_context.attach(_remote("01"))
        try:
            with raised(ValueError), tracekit.span("GET /orders", kind=SpanKind.SERVER):
                with tracekit.span("fetch"):
                    assert processor.held_spans == 0
                raise ValueError("bad")
        finally:
            otel_context.detach(token)
        fetch, root = recorder.spans
        assert (fetch.name, root.name) == ("fetch", "GET /orders")
        assert dict(fetch.attributes or {}) == {}
        assert dict(root.attributes or {}) == {"error.type": "ValueError"}
        assert tracekit.stats().kept_traces == 0


def test_head_sampled_traces_are_exported_once_without_the_kept_attribute() -> None:
    with keeping(sample_ratio=1.0, keep_slow_ms=100) as recorder:
        processor = keep_processor(recorder.tracing)
        with tracekit.span("checkout", kind=SpanKind.SERVER) as root:
            with raised(ValueError), tracekit.span("charge"):
                raise ValueError("card declined")
            assert processor.held_spans == 0
            _sleep_at_least(root, 0.1)
        with tracekit.span("plain"):
            pass
        spans = recorder.spans
        assert [span.name for span in spans] == ["charge", "checkout", "plain"]
        assert [dict(span.attributes or {}) for span in spans] == [{"error.type": "ValueError"}, {}, {}]
        assert len({ids(span) for span in spans}) == 3
        assert {span.context.trace_flags for span in spans} == {KEPT_FLAGS}
        stats = tracekit.stats()
        assert (stats.kept_traces, stats.exported) == (0, 3)


def test_propagation_inside_a_held_trace_says_not_sampled() -> None:
    with keeping() as recorder:
        with tracekit.span("checkout") as root:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            trace_id, span_id = ids(root)
            # sampled bit clear (the random bit of tracekit's root ids set)
            assert carrier["traceparent"] == f"00-{trace_id:032x}-{span_id:016x}-02"
            with raised(ValueError), tracekit.span("charge"):
                raise ValueError("declined")
        assert [span.name for span in recorder.spans] == ["charge", "checkout"]  # kept, yet sent as unsampled

        token = otel_context.attach(_remote("00"))
        try:
            with tracekit.span("GET /orders", kind=SpanKind.SERVER) as served:
                carrier = {}
                propagate.inject(carrier)
        finally:
            otel_context.detach(token)
        assert carrier["traceparent"] == f"00-{TRACE}-{ids(served)[1]:016x}-00"


# --------------------------------------------------------------------------- several local roots in one trace


def test_concurrent_local_roots_of_one_trace_are_judged_on_their_own_spans() -> None:
    """Two requests of one unsampled trace in flight at once (a caller fanning out to this
    service): the fast one that ends first must not take the failing one's spans with it."""
    with keeping() as recorder:
        tracer = tracer_of(recorder)
        fine = tracer.start_span("GET /a", _remote("00", PARENT), kind=SpanKind.SERVER)
        failing = tracer.start_span("GET /b", _remote("00", OTHER_PARENT), kind=SpanKind.SERVER)
        step = tracer.start_span("b.step", trace.set_span_in_context(failing))
        step.end()
        fine.end()  # fast and fine: discarded, with its own spans only
        failing.set_status(StatusCode.ERROR, "b failed")
        failing.end()
        names = [span.name for span in recorder.spans]
        assert names == ["b.step", "GET /b"], f"the failing request's trace was exported as {names}"


# --------------------------------------------------------------------------- the memory bound


def _open_trace(children: int, name: str = "root") -> tuple[contextvars.Context, Any, Span]:
    """A root span left open (in a context of its own) with ``children`` ended children."""
    context = contextvars.copy_context()

    def start() -> tuple[Any, Span]:
        block = tracekit.span(name)
        root = block.__enter__()
        for _ in range(children):
            with tracekit.span("child"):
                pass
        return block, root

    block, root = context.run(start)
    return context, block, root


def _end_trace(opened: tuple[contextvars.Context, Any, Span], *, failed: bool) -> None:
    context, block, root = opened
    if failed:
        root.set_status(StatusCode.ERROR, "failed late")
    context.run(block.__exit__, None, None, None)


def _flood(processor: KeepProcessor, traces: int, children: int, bound: int) -> list[Any]:
    opened = []
    for number in range(traces):
        opened.append(_open_trace(children, f"root-{number}"))
        assert processor.held_spans <= bound
    return opened


def test_a_flood_of_open_traces_stays_within_the_buffer_and_evicts_the_oldest_whole() -> None:
    with keeping(keep_buffer_spans=100) as recorder:
        processor = keep_processor(recorder.tracing)
        held: list[int] = []
        opened = []
        for number in range(50):  # 250 ended children in 50 traces whose roots stay open
            context = contextvars.copy_context()

            def start(number: int = number) -> tuple[Any, Span]:
                block = tracekit.span(f"root-{number}")
                root = block.__enter__()
                for _ in range(5):
                    with tracekit.span("child"):
                        pass
                    held.append(processor.held_spans)
                return block, root

            block, root = context.run(start)
            opened.append((context, block, root))
        assert len(held) == 250
        assert max(held) == 100  # the bound is reached, never passed
        assert processor.held_spans == 100
        # the oldest 30 traces were discarded whole (5 spans each): 20 remain
        stats = tracekit.stats()
        assert (stats.keep_evicted_traces, stats.kept_traces) == (30, 0)
        assert recorder.spans == []

        for item in opened[30:]:  # the traces still fully held fail: each is exported whole
            _end_trace(item, failed=True)
        assert processor.held_spans == 0
        spans = recorder.spans
        assert len(spans) == 20 * 6
        by_trace: dict[int, list[ReadableSpan]] = {}
        for span in spans:
            by_trace.setdefault(span.context.trace_id, []).append(span)
        expected = {
            ids(root)[0]: f"root-{number}" for number, (_, _, root) in enumerate(opened) if number >= 30
        }
        assert set(by_trace) == set(expected)
        for trace_id, members in by_trace.items():
            assert [span.name for span in members] == ["child"] * 5 + [expected[trace_id]]
            root_id = members[-1].context.span_id
            assert {parent_ids(span) for span in members[:5]} == {(trace_id, root_id)}
            assert {dict(span.attributes or {})[KEPT_ATTRIBUTE] for span in members} == {"error"}
        stats = tracekit.stats()
        assert (stats.keep_evicted_traces, stats.kept_traces) == (30, 20)


def test_evicted_traces_are_not_exported_when_their_root_fails_later() -> None:
    """A trace discarded to stay within the buffer is gone: its root failing afterwards must
    not export a partial trace (the root alone, or with the spans that ended after eviction)."""
    with keeping(keep_buffer_spans=100) as recorder:
        processor = keep_processor(recorder.tracing)
        opened = _flood(processor, traces=50, children=5, bound=100)
        assert tracekit.stats().keep_evicted_traces == 30
        # one more span of an evicted trace ends after the eviction
        context = opened[0][0]
        context.run(lambda: tracekit.span("late-child").__enter__().end())
        for item in opened[:30]:
            _end_trace(item, failed=True)
        exported = [(span.name, dict(span.attributes or {}).get(KEPT_ATTRIBUTE)) for span in recorder.spans]
        assert exported == [], f"evicted traces were exported partially: {exported}"
        stats = tracekit.stats()
        assert (stats.kept_traces, stats.keep_evicted_traces) == (0, 30)


def test_a_trace_larger_than_the_buffer_is_discarded_not_exported_in_part() -> None:
    with keeping(keep_buffer_spans=10) as recorder:
        processor = keep_processor(recorder.tracing)
        with raised(ValueError), tracekit.span("batch"):
            for _ in range(14):
                with tracekit.span("item"):
                    pass
                assert processor.held_spans <= 10
            raise ValueError("batch failed")
        exported = [span.name for span in recorder.spans]
        assert exported == [], f"a trace evicted from the buffer was exported in part: {exported}"
        assert tracekit.stats().keep_evicted_traces >= 1


def test_flooding_20000_spans_into_a_buffer_of_1000_keeps_memory_flat() -> None:
    """200 traces whose roots stay open, 100 ended children each: only the buffer bounds what
    is held. Held spans never pass 1,000 and traced memory stays flat after warm-up (it grows
    by the open roots alone); holding all 20,000 children would take well over 10 MB."""
    with keeping(keep_errors=True, keep_slow_ms=None, keep_buffer_spans=1000) as recorder:
        processor = keep_processor(recorder.tracing)
        opened: list[Any] = []
        samples: list[int] = []
        most = 0
        gc.collect()
        tracemalloc.start()
        try:
            for number in range(200):
                opened.append(_open_trace(100))
                most = max(most, processor.held_spans)
                if number % 10 == 9:
                    gc.collect()
                    samples.append(tracemalloc.get_traced_memory()[0])
        finally:
            tracemalloc.stop()
        assert most == 1000
        assert processor.held_spans == 1000
        # the last 10 traces are held whole; the 190 before them were evicted
        assert tracekit.stats().keep_evicted_traces == 190
        baseline = samples[1]  # 20 traces, 2,000 spans in: the buffer is full
        growth = [sample - baseline for sample in samples[2:]]
        assert max(growth) < 1024 * 1024, f"traced memory grew by {growth} bytes after warm-up"
        for item in opened:
            _end_trace(item, failed=False)
        assert processor.held_spans == 0
        stats = tracekit.stats()
        assert (stats.keep_evicted_traces, stats.kept_traces, stats.exported) == (190, 0, 0)
        assert recorder.spans == []


# --------------------------------------------------------------------------- configuration


@pytest.fixture
def caplog_tracekit(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="tracekit")
    return caplog


def tracekit_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("tracekit") and record.levelno >= logging.WARNING
    ]


def _provider_shape(tracing: tracekit.Tracing) -> tuple[str, list[str]]:
    assert tracing.provider is not None
    processors = tracing.provider._active_span_processor._span_processors
    return type(tracing.provider.sampler).__name__, [type(p).__name__ for p in processors]


def test_keep_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, caplog_tracekit: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    monkeypatch.setenv("TRACEKIT_KEEP_ERRORS", "TRUE")
    monkeypatch.setenv("TRACEKIT_KEEP_SLOW_MS", " 250 ")
    monkeypatch.setenv("TRACEKIT_KEEP_BUFFER_SPANS", "3")
    with capture_spans(instrument=False) as recorder:
        settings = recorder.tracing.settings
        assert (settings.keep_errors, settings.keep_slow_ms, settings.keep_buffer_spans) == (True, 250, 3)
        assert recorder.tracing.sources["keep_slow_ms"] == "TRACEKIT_KEEP_SLOW_MS"
        assert _provider_shape(recorder.tracing) == ("KeepSampler", ["KeepProcessor", "BatchSpanProcessor"])
        assert recorder.tracing.provider.sampler.get_description().startswith(
            "KeepUnsampled{ParentBased{root:ProbabilitySampler{0.0},"
        )
        processor = keep_processor(recorder.tracing)
        with tracekit.span("root"):
            for _ in range(4):
                with tracekit.span("child"):
                    pass
                assert processor.held_spans <= 3
        assert tracekit.stats().keep_evicted_traces == 1
    assert tracekit_warnings(caplog_tracekit) == []


def test_keep_is_off_by_default_and_builds_nothing() -> None:
    with capture_spans(instrument=False, sample_ratio=0.0) as recorder:
        settings = recorder.tracing.settings
        assert (settings.keep_errors, settings.keep_slow_ms, settings.keep_buffer_spans) == (
            False,
            None,
            10_000,
        )
        assert _provider_shape(recorder.tracing) == ("ParentBased", ["BatchSpanProcessor"])
        with raised(ValueError), tracekit.span("failing") as span:
            assert not span.is_recording()
            raise ValueError("not kept")
        assert recorder.spans == []


def test_keep_slow_ms_not_a_number_warns_and_falls_back_to_off(
    monkeypatch: pytest.MonkeyPatch, caplog_tracekit: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TRACEKIT_KEEP_SLOW_MS", "abc")
    tracing = tracekit.configure(exporters=[], instrument=False)
    assert tracekit_warnings(caplog_tracekit) == [
        "tracekit: TRACEKIT_KEEP_SLOW_MS='abc' is not valid (expected a whole number >= 0); "
        "using the default (off) instead"
    ]
    assert tracing.settings.keep_slow_ms is None
    assert tracing.sources["keep_slow_ms"] == "default"
    assert _provider_shape(tracing) == ("ParentBased", [])  # nothing else asks for keeping


def test_keep_slow_ms_not_a_number_leaves_keep_errors_working(
    monkeypatch: pytest.MonkeyPatch, caplog_tracekit: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TRACEKIT_KEEP_ERRORS", "true")
    monkeypatch.setenv("TRACEKIT_KEEP_SLOW_MS", "-5")
    with capture_spans(instrument=False, sample_ratio=0.0) as recorder:
        assert tracekit_warnings(caplog_tracekit) == [
            "tracekit: TRACEKIT_KEEP_SLOW_MS='-5' is not valid (expected a whole number >= 0); "
            "using the default (off) instead"
        ]
        timed_root(recorder, "slow", 10_000 * _MS)
        timed_root(recorder, "failing", 1 * _MS, child_fails=True)
        assert [span.name for span in recorder.spans] == ["failing.step", "failing"]


@pytest.mark.parametrize(
    ("variable", "value", "fallback"),
    [
        ("TRACEKIT_KEEP_ERRORS", "yes", "false"),
        ("TRACEKIT_KEEP_BUFFER_SPANS", "0", "10000"),
        ("TRACEKIT_KEEP_BUFFER_SPANS", "many", "10000"),
    ],
)
def test_other_invalid_keep_values_warn_and_fall_back(
    monkeypatch: pytest.MonkeyPatch,
    caplog_tracekit: pytest.LogCaptureFixture,
    variable: str,
    value: str,
    fallback: str,
) -> None:
    monkeypatch.setenv(variable, value)
    tracing = tracekit.configure(exporters=[], instrument=False)
    (message,) = tracekit_warnings(caplog_tracekit)
    assert message.startswith(f"tracekit: {variable}={value!r} is not valid (expected ")
    assert message.endswith(f"); using the default ({fallback}) instead")
    assert (tracing.settings.keep_errors, tracing.settings.keep_buffer_spans) == (False, 10_000)


@pytest.mark.parametrize("value", ["1e303", "inf", str(10**30)])
def test_a_huge_slow_threshold_from_the_environment_never_breaks_configure(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """A bad environment value never raises (settings contract); 10**30 ms is a valid one."""
    monkeypatch.setenv("TRACEKIT_KEEP_ERRORS", "true")
    monkeypatch.setenv("TRACEKIT_KEEP_SLOW_MS", value)
    try:
        tracing = tracekit.configure(exporters=[], instrument=False, sample_ratio=0.0)
    except Exception as exc:
        pytest.fail(f"configure() with TRACEKIT_KEEP_SLOW_MS={value} raised {type(exc).__name__}: {exc}")
    assert tracing.enabled


def test_keep_keywords_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in (
        {"keep_slow_ms": -1},
        {"keep_slow_ms": "soon"},
        {"keep_errors": "yes"},
        {"keep_buffer_spans": 0},
    ):
        with pytest.raises(tracekit.ConfigError):
            tracekit.configure(exporters=[], instrument=False, **bad)
    try:
        tracing = tracekit.configure(exporters=[], instrument=False, keep_slow_ms=float("inf"))
    except tracekit.ConfigError:
        return  # refusing an infinite threshold is fine; any other exception is not
    except Exception as exc:
        pytest.fail(f"configure(keep_slow_ms=inf) raised {type(exc).__name__}: {exc}")
    assert tracing.enabled


def test_tracekit_config_lists_the_keep_settings() -> None:
    command = [*tracekit_command(), "config", "--json"]
    done = run(command, environment(TRACEKIT_KEEP_ERRORS="true", TRACEKIT_KEEP_SLOW_MS="1500"))
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    for name in ("keep_errors", "keep_slow_ms", "keep_buffer_spans"):
        assert rows[name]["doc"], name
    assert {name: _row(rows[name]) for name in ("keep_errors", "keep_slow_ms", "keep_buffer_spans")} == {
        "keep_errors": (
            ["TRACEKIT_KEEP_ERRORS"],
            True,
            "true",
            "environment",
            "TRACEKIT_KEEP_ERRORS",
            "false",
        ),
        "keep_slow_ms": (
            ["TRACEKIT_KEEP_SLOW_MS"],
            1500,
            "1500",
            "environment",
            "TRACEKIT_KEEP_SLOW_MS",
            "off",
        ),
        "keep_buffer_spans": (["TRACEKIT_KEEP_BUFFER_SPANS"], 10000, "10000", "default", None, "10000"),
    }
    names = list(rows)
    assert names.index("keep_errors") == names.index("sample_ratio") + 1

    text = run([*tracekit_command(), "config"], environment())
    assert text.returncode == 0, text.stderr
    lines = {line.split()[0]: line.split()[1:] for line in text.stdout.splitlines() if line.strip()}
    assert lines["keep_errors"] == ["false", "default"]
    assert lines["keep_slow_ms"] == ["(default:", "off)", "default"]
    assert lines["keep_buffer_spans"] == ["10000", "default"]


def _row(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["env"], row["value"], row["display"], row["source"], row["variable"], row["default"])
