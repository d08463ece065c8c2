"""The batch span processor: off-thread export, bounded queue, bounded flush and shutdown, fork."""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence

import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Tracer

import tracekit
from tracekit._processor import BatchSpanProcessor
from tracekit.testing import OTLPReceiver

#: The longest any test here waits for anything; every blocking call is bounded by it.
BOUND = 10.0


class FakeExporter(SpanExporter):
    """Records what it exports and from where; ``hold()`` makes the next exports hang."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.threads: list[str] = []
        self.suppressed: list[object] = []
        self.entered = threading.Event()
        self.released = threading.Event()
        self.released.set()
        self.shut_down = threading.Event()

    def hold(self) -> None:
        self.entered.clear()
        self.released.clear()

    def release(self) -> None:
        self.released.set()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.threads.append(threading.current_thread().name)
        self.suppressed.append(otel_context.get_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY))
        self.entered.set()
        self.released.wait(BOUND)
        self.batches.append([span.name for span in spans])
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.shut_down.set()


class Pipeline:
    def __init__(self, processor: BatchSpanProcessor, exporter: FakeExporter, tracer: Tracer) -> None:
        self.processor = processor
        self.exporter = exporter
        self.tracer = tracer

    def end_spans(self, *names: str) -> None:
        for name in names:
            self.tracer.start_span(name).end()


@pytest.fixture
def make_pipeline() -> Iterator[Callable[..., Pipeline]]:
    made: list[Pipeline] = []

    def make(**options: float) -> Pipeline:
        exporter = FakeExporter()
        processor = BatchSpanProcessor(
            exporter,
            max_queue_size=int(options.get("max_queue_size", 2048)),
            max_export_batch_size=int(options.get("max_export_batch_size", 512)),
            schedule_delay=options.get("schedule_delay", 30.0),
            export_timeout=options.get("export_timeout", 5.0),
        )
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(processor)
        pipeline = Pipeline(processor, exporter, provider.get_tracer("tests.processor"))
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        pipeline.exporter.release()
        pipeline.processor.shutdown(timeout_millis=2000)


def tracekit_records(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "tracekit"]


def test_export_runs_on_the_worker_thread_with_instrumentation_suppressed(make_pipeline) -> None:
    pipeline = make_pipeline(max_export_batch_size=2)
    pipeline.end_spans("a", "b", "c")

    assert pipeline.processor.force_flush(int(BOUND * 1000)) is True
    assert pipeline.exporter.batches == [["a", "b"], ["c"]]
    assert pipeline.exporter.threads == ["tracekit-export", "tracekit-export"]
    assert threading.current_thread().name not in pipeline.exporter.threads
    assert pipeline.exporter.suppressed == [True, True]
    # The application's own context never sees the key.
    assert otel_context.get_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY) is None


def test_a_full_batch_is_exported_without_waiting_for_the_schedule(make_pipeline) -> None:
    pipeline = make_pipeline(max_export_batch_size=3, schedule_delay=30.0)
    pipeline.end_spans("a", "b", "c")

    assert pipeline.exporter.entered.wait(BOUND)
    deadline = time.monotonic() + BOUND
    while not pipeline.exporter.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pipeline.exporter.batches == [["a", "b", "c"]]


def test_ending_spans_never_waits_for_a_hanging_export(make_pipeline) -> None:
    pipeline = make_pipeline(max_queue_size=100, max_export_batch_size=1)
    pipeline.exporter.hold()
    pipeline.end_spans("first")
    assert pipeline.exporter.entered.wait(BOUND)

    started = time.perf_counter()
    pipeline.end_spans(*(f"span-{i}" for i in range(200)))
    elapsed = time.perf_counter() - started

    assert elapsed < 1.0
    assert pipeline.exporter.batches == []  # the export is still hanging, on its own thread


def test_full_queue_drops_counts_and_warns_once_with_the_count(
    make_pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    message = (
        "tracekit: the export queue is full (OTEL_BSP_MAX_QUEUE_SIZE=4); %d spans were dropped. "
        "Is the collector reachable and fast enough?"
    )
    pipeline = make_pipeline(max_queue_size=4, max_export_batch_size=4)
    pipeline.exporter.hold()
    pipeline.end_spans("s0", "s1", "s2", "s3")  # a full batch: the worker takes it and hangs
    assert pipeline.exporter.entered.wait(BOUND)
    pipeline.end_spans("s4", "s5", "s6", "s7")  # fills the queue again
    pipeline.end_spans(*(f"lost-{i}" for i in range(10)))

    # Nothing is logged on the application thread while the export hangs.
    assert tracekit_records(caplog) == []

    pipeline.exporter.release()
    assert pipeline.processor.force_flush(int(BOUND * 1000)) is True
    assert pipeline.exporter.batches == [["s0", "s1", "s2", "s3"], ["s4", "s5", "s6", "s7"]]
    assert pipeline.processor.dropped.total == 10
    assert tracekit_records(caplog) == [(logging.WARNING, message % 10)]

    # More drops within the minute: counted, not logged again until shutdown.
    pipeline.exporter.hold()
    pipeline.end_spans("t0", "t1", "t2", "t3")
    assert pipeline.exporter.entered.wait(BOUND)
    pipeline.end_spans("t4", "t5", "t6", "t7", "lost-a", "lost-b", "lost-c")
    pipeline.exporter.release()
    assert pipeline.processor.force_flush(int(BOUND * 1000)) is True
    assert pipeline.processor.dropped.total == 13
    assert tracekit_records(caplog) == [(logging.WARNING, message % 10)]

    pipeline.processor.shutdown(timeout_millis=int(BOUND * 1000))
    assert tracekit_records(caplog) == [(logging.WARNING, message % 10), (logging.WARNING, message % 3)]
    assert [name for batch in pipeline.exporter.batches for name in batch] == [
        *(f"s{i}" for i in range(8)),
        *(f"t{i}" for i in range(8)),
    ]


def test_force_flush_honours_its_timeout_while_an_export_hangs(make_pipeline) -> None:
    pipeline = make_pipeline(max_export_batch_size=1)
    pipeline.exporter.hold()
    pipeline.end_spans("hanging")
    assert pipeline.exporter.entered.wait(BOUND)

    started = time.monotonic()
    assert pipeline.processor.force_flush(300) is False
    elapsed = time.monotonic() - started

    assert 0.29 <= elapsed < 1.5
    pipeline.exporter.release()
    assert pipeline.processor.force_flush(int(BOUND * 1000)) is True
    assert pipeline.exporter.batches == [["hanging"]]


def test_shutdown_honours_its_timeout_while_an_export_hangs(
    make_pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = make_pipeline(max_export_batch_size=1)
    pipeline.exporter.hold()
    pipeline.end_spans("hanging")
    assert pipeline.exporter.entered.wait(BOUND)

    started = time.monotonic()
    pipeline.processor.shutdown(timeout_millis=300)
    elapsed = time.monotonic() - started

    assert 0.29 <= elapsed < 1.5
    assert pipeline.exporter.shut_down.is_set()
    assert tracekit_records(caplog) == [
        (logging.WARNING, "tracekit: spans still exporting after 0.3 s at shutdown; giving up on them")
    ]
    # After shutdown, spans are ignored and flushing reports failure at once.
    pipeline.end_spans("after")
    assert pipeline.processor.force_flush(1000) is False


def test_shutdown_exports_what_is_queued(make_pipeline) -> None:
    pipeline = make_pipeline(max_export_batch_size=512, schedule_delay=30.0)
    pipeline.end_spans("a", "b")
    pipeline.processor.shutdown(timeout_millis=int(BOUND * 1000))
    assert pipeline.exporter.batches == [["a", "b"]]
    assert pipeline.exporter.shut_down.is_set()


def test_tracing_shutdown_is_bounded_by_its_timeout(caplog: pytest.LogCaptureFixture) -> None:
    exporter = FakeExporter()
    tracing = tracekit.configure(service_name="tests", exporters=[exporter])
    exporter.hold()
    try:
        tracing.provider.get_tracer("tests").start_span("hanging").end()
        assert tracing.force_flush(timeout=0.2) is False  # the export hangs
        assert exporter.entered.wait(BOUND)
        started = time.monotonic()
        tracing.shutdown(timeout=0.3)
        elapsed = time.monotonic() - started
    finally:
        exporter.release()
    assert elapsed < 1.5
    assert tracing.enabled is False
    assert (
        logging.WARNING,
        "tracekit: spans still exporting after 0.3 s at shutdown; giving up on them",
    ) in tracekit_records(caplog)


def test_unsampled_spans_are_not_queued() -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    exporter = FakeExporter()
    processor = BatchSpanProcessor(exporter, schedule_delay=30.0)
    provider = TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False)
    provider.add_span_processor(processor)
    provider.get_tracer("tests").start_span("unsampled").end()
    assert processor.force_flush(int(BOUND * 1000)) is True
    processor.shutdown(timeout_millis=int(BOUND * 1000))
    assert exporter.batches == []


FORK_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import tracekit

    tracing = tracekit.configure(service_name="forking")
    tracer = tracing.provider.get_tracer("tests.fork")
    tracer.start_span("queued-before-fork", attributes={"test.pid": os.getpid()}).end()

    pid = os.fork()
    if pid == 0:
        tracer.start_span("in-child", attributes={"test.pid": os.getpid()}).end()
        flushed = tracing.force_flush(timeout=5)
        os._exit(0 if flushed else 3)

    _, status = os.waitpid(pid, 0)
    tracer.start_span("in-parent-after-fork", attributes={"test.pid": os.getpid()}).end()
    print(pid, flush=True)
    sys.exit(os.waitstatus_to_exitcode(status))
    """
)


@pytest.mark.skipif(not hasattr(sys.modules["os"], "fork"), reason="needs os.fork")
def test_forked_child_exports_its_own_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    with OTLPReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "30000")
        result = subprocess.run(
            [sys.executable, "-c", FORK_SCRIPT],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        child_pid = int(result.stdout.strip())
        spans = receiver.wait_for_spans(3, timeout=BOUND)

    by_name = {span.name: span for span in spans}
    assert sorted(span.name for span in spans) == ["in-child", "in-parent-after-fork", "queued-before-fork"]
    assert by_name["in-child"].attributes == {"test.pid": child_pid}
    parent_pid = by_name["queued-before-fork"].attributes["test.pid"]
    assert parent_pid != child_pid
    assert by_name["in-parent-after-fork"].attributes == {"test.pid": parent_pid}
    # The child sent its own span in a request of its own; the parent's queued span went
    # once, from the parent (the child started with an empty queue).
    senders = [[span.name for span in request.spans] for request in receiver.requests]
    assert ["in-child"] in senders


def export_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "tracekit-export"]


def test_no_export_thread_until_the_first_span(make_pipeline) -> None:
    before = len(export_threads())
    pipeline = make_pipeline(schedule_delay=0.05)
    assert len(export_threads()) == before
    assert pipeline.processor.force_flush(int(BOUND * 1000)) is True  # nothing to flush: no thread
    assert len(export_threads()) == before

    pipeline.end_spans("first")
    assert len(export_threads()) == before + 1
    assert pipeline.processor.force_flush(int(BOUND * 1000)) is True
    assert pipeline.exporter.batches == [["first"]]
    pipeline.end_spans("second", "third")
    assert len(export_threads()) == before + 1  # one worker for the processor's life
    assert pipeline.processor.force_flush(int(BOUND * 1000)) is True
    assert pipeline.exporter.batches == [["first"], ["second", "third"]]


def test_a_processor_that_never_queued_shuts_down_without_a_thread(make_pipeline) -> None:
    before = len(export_threads())
    pipeline = make_pipeline()
    pipeline.processor.shutdown(timeout_millis=1000)
    assert pipeline.exporter.shut_down.is_set()
    assert len(export_threads()) == before
    pipeline.end_spans("after shutdown")
    assert len(export_threads()) == before


def test_the_export_thread_does_not_keep_the_context_of_the_span_that_started_it(make_pipeline) -> None:
    class Probe:
        """Rides in the context the first span ends in; only that context refers to it."""

    pipeline = make_pipeline()
    probe = Probe()
    token = otel_context.attach(otel_context.set_value("tracekit.test.probe", probe))
    try:
        pipeline.end_spans("first")  # starts the worker
    finally:
        otel_context.detach(token)
    assert pipeline.processor.force_flush(int(BOUND * 1000)) is True
    reference = weakref.ref(probe)
    del probe
    gc.collect()
    assert reference() is None, "the export thread holds the context its first span ended in"


def test_spans_queued_when_no_thread_can_start_are_exported_in_line(
    make_pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At interpreter exit Python refuses new threads: the first span then (an atexit handler's)
    # is exported by the flush itself.
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    pipeline = make_pipeline()
    monkeypatch.setattr(threading.Thread, "start", refuse)
    pipeline.end_spans("at exit")
    monkeypatch.undo()
    assert pipeline.processor._worker is None
    assert pipeline.processor.force_flush(int(BOUND * 1000)) is True
    assert pipeline.exporter.batches == [["at exit"]]
    assert pipeline.exporter.threads == [threading.current_thread().name]
    assert pipeline.exporter.suppressed == [True]
