"""Trace ids on log records (a chained record factory) and the structlog processor."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from opentelemetry import trace

import tracekit
import tracekit.logs
from tracekit.testing import SpanRecorder, capture_spans

FIELDS = ("trace_id", "span_id", "trace_sampled", "service_name")


class Capture(logging.Handler):
    """Keeps every record it handles, and the line its formatter makes of it."""

    def __init__(self, fmt: str = "%(message)s") -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(fmt))
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


@pytest.fixture
def capture() -> Iterator[Callable[..., tuple[logging.Logger, Capture]]]:
    """A logger of its own with a capturing handler; handlers are removed afterwards."""
    made: list[tuple[logging.Logger, Capture]] = []

    def make(fmt: str = "%(message)s") -> tuple[logging.Logger, Capture]:
        logger = logging.getLogger(f"checkout.test{len(made)}")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        handler = Capture(fmt)
        logger.addHandler(handler)
        made.append((logger, handler))
        return logger, handler

    yield make
    for logger, handler in made:
        logger.removeHandler(handler)


@pytest.fixture
def restore_factory() -> Iterator[Callable[..., logging.LogRecord]]:
    """Whatever record factory a test installs is put back afterwards."""
    original = logging.getLogRecordFactory()
    yield original
    logging.setLogRecordFactory(original)


def ids(span: trace.Span) -> tuple[str, str]:
    context = span.get_span_context()
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def test_records_carry_the_current_span_ids(spans: SpanRecorder, capture: Any) -> None:
    log, handler = capture("%(message)s trace_id=%(trace_id)s span_id=%(span_id)s sampled=%(trace_sampled)s")
    with tracekit.span("authorize_payment") as current:
        log.info("charging card")
    trace_id, span_id = ids(current)
    [record] = handler.records
    assert (record.trace_id, record.span_id, record.trace_sampled, record.service_name) == (  # type: ignore[attr-defined]
        trace_id,
        span_id,
        True,
        "tests",
    )
    assert len(trace_id) == 32
    assert len(span_id) == 16
    assert handler.lines == [f"charging card trace_id={trace_id} span_id={span_id} sampled=True"]
    [span] = spans.spans
    assert span.context is not None
    assert f"{span.context.span_id:016x}" == span_id


def test_outside_a_span_the_ids_are_empty_and_format_strings_still_work(
    spans: SpanRecorder, capture: Any
) -> None:
    log, handler = capture("[%(service_name)s %(trace_id)s/%(span_id)s %(trace_sampled)s] %(message)s")
    log.warning("cart abandoned")
    [record] = handler.records
    assert {name: getattr(record, name) for name in FIELDS} == {
        "trace_id": "",
        "span_id": "",
        "trace_sampled": False,
        "service_name": "tests",
    }
    assert handler.lines == ["[tests / False] cart abandoned"]


def test_a_record_in_an_unsampled_trace_says_so(capture: Any) -> None:
    log, handler = capture()
    with capture_spans(service_name="tests", sampler="parentbased_always_off"), tracekit.span("root") as root:
        log.info("not sampled")
    [record] = handler.records
    assert (record.trace_id, record.span_id) == ids(root)  # type: ignore[attr-defined]
    assert record.trace_sampled is False  # type: ignore[attr-defined]


def test_extra_values_for_the_same_names_win(spans: SpanRecorder, capture: Any) -> None:
    log, handler = capture("%(trace_id)s %(span_id)s %(message)s")
    with tracekit.span("refund") as current:
        log.info("legacy correlation", extra={"trace_id": "from-the-app"})
    [record] = handler.records
    assert record.trace_id == "from-the-app"  # type: ignore[attr-defined]
    assert record.span_id == ids(current)[1]  # type: ignore[attr-defined]


def test_a_factory_installed_before_configure_is_chained_and_restored(
    restore_factory: Callable[..., logging.LogRecord], capture: Any
) -> None:
    def app_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = restore_factory(*args, **kwargs)
        record.region = "eu-west-1"
        return record

    logging.setLogRecordFactory(app_factory)
    log, handler = capture()
    with capture_spans(service_name="tests"):
        assert logging.getLogRecordFactory() is not app_factory
        with tracekit.span("ship") as current:
            log.info("shipped")
    assert logging.getLogRecordFactory() is app_factory
    log.info("after shutdown")

    during, after = handler.records
    assert during.region == "eu-west-1"  # type: ignore[attr-defined]
    assert (during.trace_id, during.span_id) == ids(current)  # type: ignore[attr-defined]
    assert after.region == "eu-west-1"  # type: ignore[attr-defined]
    assert not hasattr(after, "trace_id")


def test_a_factory_installed_after_configure_keeps_working_after_shutdown(
    restore_factory: Callable[..., logging.LogRecord], capture: Any
) -> None:
    log, handler = capture()
    with capture_spans(service_name="tests"):
        tracekit_factory = logging.getLogRecordFactory()

        def late_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = tracekit_factory(*args, **kwargs)
            record.tenant = "acme"
            return record

        logging.setLogRecordFactory(late_factory)
        log.info("during")
    assert logging.getLogRecordFactory() is late_factory
    log.info("after")

    during, after = handler.records
    assert (during.tenant, during.trace_id) == ("acme", "")  # type: ignore[attr-defined]
    assert after.tenant == "acme"  # type: ignore[attr-defined]
    assert not hasattr(after, "trace_id")


def test_configure_again_after_shutdown_installs_it_again(capture: Any) -> None:
    original = logging.getLogRecordFactory()
    log, handler = capture()
    for _ in range(2):
        with capture_spans(service_name="tests"):
            log.info("configured")
        assert logging.getLogRecordFactory() is original
    assert [record.service_name for record in handler.records] == ["tests", "tests"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("env", "keyword"),
    [({}, {"log_correlation": False}), ({"TRACEKIT_LOG_CORRELATION": "false"}, {})],
)
def test_switched_off(
    monkeypatch: pytest.MonkeyPatch, capture: Any, env: dict[str, str], keyword: dict[str, Any]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    original = logging.getLogRecordFactory()
    log, handler = capture()
    with capture_spans(service_name="tests", **keyword) as recorder:
        assert recorder.tracing.settings.log_correlation is False
        assert logging.getLogRecordFactory() is original
        with tracekit.span("quiet"):
            log.info("no ids")
    [record] = handler.records
    assert not any(hasattr(record, name) for name in FIELDS)


def test_with_tracing_disabled_format_strings_keep_working(capture: Any) -> None:
    log, handler = capture("%(trace_id)s|%(span_id)s|%(service_name)s %(message)s")
    with capture_spans(service_name="tests", disabled=True):
        log.info("disabled")
    assert handler.lines == ["||tests disabled"]


def test_the_default_service_name_is_the_resource_one(capture: Any) -> None:
    log, handler = capture()
    with capture_spans(resource_attributes={"service.name": "from-resource"}):
        log.info("hello")
    assert handler.records[0].service_name == "from-resource"  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- structlog


@pytest.fixture
def structlog_output() -> Iterator[io.StringIO]:
    output = io.StringIO()
    structlog.configure(
        processors=[tracekit.logs.add_trace_context, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(file=output),
        cache_logger_on_first_use=False,
    )
    yield output
    structlog.reset_defaults()


def _events(output: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.getvalue().splitlines()]


def test_structlog_processor_adds_the_same_fields(spans: SpanRecorder, structlog_output: io.StringIO) -> None:
    log = structlog.get_logger()
    with tracekit.span("capture_payment") as current:
        log.info("captured", amount=12)
    log.info("idle")

    trace_id, span_id = ids(current)
    assert _events(structlog_output) == [
        {
            "event": "captured",
            "amount": 12,
            "trace_id": trace_id,
            "span_id": span_id,
            "trace_sampled": True,
            "service_name": "tests",
        },
        {"event": "idle", "trace_id": "", "span_id": "", "trace_sampled": False, "service_name": "tests"},
    ]


def test_structlog_processor_keeps_keys_the_event_already_has(
    spans: SpanRecorder, structlog_output: io.StringIO
) -> None:
    with tracekit.span("x"):
        structlog.get_logger().info("bound", trace_id="mine")
    [event] = _events(structlog_output)
    assert event["trace_id"] == "mine"
    assert len(event["span_id"]) == 16


def test_structlog_is_never_imported_by_tracekit() -> None:
    code = (
        "import sys, tracekit, tracekit.logs; tracekit.configure(exporters=[]); "
        "print('structlog' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


OTEL_FORMAT = (
    "%(message)s [trace_id=%(otelTraceID)s span_id=%(otelSpanID)s "
    "resource.service.name=%(otelServiceName)s trace_sampled=%(otelTraceSampled)s]"
)


def test_opentelemetry_logging_format_strings_work_unchanged(spans: SpanRecorder, capture: Any) -> None:
    # The fields of the default format of OpenTelemetry's logging instrumentation.
    log, handler = capture(OTEL_FORMAT)
    with tracekit.span("authorize_payment") as current:
        log.info("charging card")
    log.info("idle")
    trace_id, span_id = ids(current)
    assert handler.lines == [
        f"charging card [trace_id={trace_id} span_id={span_id} "
        "resource.service.name=tests trace_sampled=True]",
        "idle [trace_id=0 span_id=0 resource.service.name=tests trace_sampled=False]",
    ]
