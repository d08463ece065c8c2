"""The OTLP exporter against a collector in trouble: retries, give-ups, warnings and counters.

Every test talks to a real :class:`~tracekit.testing.OTLPReceiver` over loopback sockets;
:class:`~tracekit._receiver.Fault` makes it answer as a struggling collector would.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest

import tracekit
from tracekit import ExportStats, Tracing
from tracekit.testing import Fault, OTLPReceiver

BOUND = 10.0
PROTOCOLS = ["http/protobuf", "grpc"]
MESSAGE = "collector says no"
TOO_LARGE_HINT = (
    "a request was larger than the collector accepts: lower TRACEKIT_EXPORT_MAX_REQUEST_SIZE "
    "or OTEL_BSP_MAX_EXPORT_BATCH_SIZE"
)
REFUSED_HINT = (
    "is the collector running there? To see spans locally instead, set OTEL_TRACES_EXPORTER=console"
)
TIMEOUT_HINT = "the collector did not answer within OTEL_EXPORTER_OTLP_TIMEOUT"


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections (bound, never listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def endpoint_of(receiver: OTLPReceiver, protocol: str) -> str:
    return receiver.http_endpoint if protocol == "http/protobuf" else receiver.grpc_endpoint


def target_of(receiver: OTLPReceiver, protocol: str) -> str:
    """The endpoint as the exporter's warnings name it."""
    if protocol == "http/protobuf":
        return receiver.http_traces_endpoint
    return f"127.0.0.1:{receiver.grpc_port}"


def configure(endpoint: str, protocol: str, **overrides: Any) -> Tracing:
    return tracekit.configure(
        service_name="faults", endpoint=endpoint, protocol=protocol, instrument=False, **overrides
    )


def make_spans(count: int, prefix: str = "span") -> list[str]:
    names = [f"{prefix}-{index}" for index in range(count)]
    for name in names:
        with tracekit.span(name):
            pass
    return names


def flush(tracing: Tracing) -> float:
    """Flush; return how long it took."""
    started = time.monotonic()
    tracing.force_flush(timeout=BOUND)
    return time.monotonic() - started


def tracekit_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(record.levelno, record.getMessage()) for record in caplog.records if record.name == "tracekit"]


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [message for level, message in tracekit_lines(caplog) if level >= logging.WARNING]


def lost_line(
    target: str, count: int, cause: str, detail: str = "", hint: str = "", since: bool = False
) -> str:
    """A line of exporters/_problems.py, spelled out."""
    return (
        f"tracekit: {count} spans could not be delivered to {target}"
        + (" in the last 60 s" if since else "")
        + f": {cause}"
        + (f" ({detail})" if detail else "")
        + (f"; {hint}" if hint else "")
    )


def only_processor(tracing: Tracing) -> Any:
    assert tracing.provider is not None
    [processor] = tracing.provider._active_span_processor._span_processors
    return processor


def http_detail(status: int, message: str) -> str:
    return f"{status} {HTTPStatus(status).phrase}: {message}"


class AttemptClock:
    """Records when each export request reaches the receiver (polling, every millisecond)."""

    def __init__(self, receiver: OTLPReceiver) -> None:
        self._receiver = receiver
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="attempt-clock", daemon=True)

    def __enter__(self) -> AttemptClock:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(BOUND)

    def _run(self) -> None:
        seen = self._receiver.attempts
        while not self._stop.is_set():
            attempts = self._receiver.attempts
            if attempts > seen:
                now = time.monotonic()
                self.times.extend([now] * (attempts - seen))
                seen = attempts
            time.sleep(0.001)


# --------------------------------------------------------------------------- retried, then delivered


@pytest.mark.parametrize(
    ("protocol", "fault"),
    [
        ("http/protobuf", Fault(http_status=503, retry_after=0, message=MESSAGE)),
        ("http/protobuf", Fault(http_status=429, retry_after=0, message=MESSAGE)),
        ("http/protobuf", Fault(http_status=502, retry_after=0, message=MESSAGE)),
        ("http/protobuf", Fault(http_status=504, retry_after=0, message=MESSAGE)),
        ("grpc", Fault(grpc_code="UNAVAILABLE", retry_after=0, message=MESSAGE)),
        ("grpc", Fault(grpc_code="ABORTED", retry_after=0, message=MESSAGE)),
    ],
    ids=["http-503", "http-429", "http-502", "http-504", "grpc-unavailable", "grpc-aborted"],
)
def test_a_retryable_failure_is_retried_and_the_spans_arrive_once(
    receiver: OTLPReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    protocol: str,
    fault: Fault,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3000")
    tracing = configure(endpoint_of(receiver, protocol), protocol)
    receiver.inject(fault)

    names = make_spans(5)
    elapsed = flush(tracing)

    assert sorted(span.name for span in receiver.wait_for_spans(5, timeout=BOUND)) == names
    assert (receiver.span_count, receiver.attempts, receiver.faults_served) == (5, 2, 1)
    assert len(receiver.requests) == 1
    stats = tracekit.stats()
    assert (stats.exported, stats.failed, stats.dropped, stats.rejected, stats.queued) == (5, 0, 0, 0, 0)
    assert (stats.requests, stats.retries) == (2, 1)
    assert stats.bytes_sent > 0
    assert warnings_of(caplog) == []
    assert elapsed < 2.0  # retry_after=0 replaces the one-second back-off


@pytest.mark.parametrize(
    ("protocol", "fault"),
    [
        ("http/protobuf", Fault(http_status=429, retry_after=2, message=MESSAGE)),
        ("grpc", Fault(grpc_code="UNAVAILABLE", retry_after=2, message=MESSAGE)),
    ],
    ids=["http-429-retry-after", "grpc-unavailable-retry-info"],
)
def test_the_collectors_retry_delay_is_honoured(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, protocol: str, fault: Fault
) -> None:
    # 2 s: longer than the first back-off (about 1 s, +-20%), so only honouring the delay explains it.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "5000")
    tracing = configure(endpoint_of(receiver, protocol), protocol)
    receiver.inject(fault)

    with AttemptClock(receiver) as clock:
        make_spans(3)
        flush(tracing)
        receiver.wait_for_spans(3, timeout=BOUND)
        time.sleep(0.01)

    assert len(clock.times) == 2
    assert 1.9 <= clock.times[1] - clock.times[0] < 3.0
    stats = tracekit.stats()
    assert (stats.exported, stats.failed, stats.requests, stats.retries) == (3, 0, 2, 1)


def test_grpc_resource_exhausted_without_retry_info_is_not_retried(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3000")
    tracing = configure(receiver.grpc_endpoint, "grpc")
    receiver.inject(Fault(grpc_code="RESOURCE_EXHAUSTED", message="quota exceeded"))

    make_spans(4)
    elapsed = flush(tracing)

    assert (receiver.attempts, receiver.span_count) == (1, 0)
    stats = tracekit.stats()
    assert (stats.exported, stats.failed, stats.requests, stats.retries) == (0, 4, 1, 0)
    assert warnings_of(caplog) == [
        lost_line(target_of(receiver, "grpc"), 4, "gRPC RESOURCE_EXHAUSTED", "quota exceeded")
    ]
    assert elapsed < 1.0


def test_grpc_resource_exhausted_with_retry_info_is_retried(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3000")
    tracing = configure(receiver.grpc_endpoint, "grpc")
    receiver.inject(Fault(grpc_code="RESOURCE_EXHAUSTED", retry_after=0.2, message="quota exceeded"))

    names = make_spans(4)
    flush(tracing)

    assert sorted(span.name for span in receiver.wait_for_spans(4, timeout=BOUND)) == names
    assert (receiver.attempts, receiver.span_count) == (2, 4)
    stats = tracekit.stats()
    assert (stats.exported, stats.failed, stats.requests, stats.retries) == (4, 0, 2, 1)
    assert warnings_of(caplog) == []


# --------------------------------------------------------------------------- not retried


@pytest.mark.parametrize(
    ("protocol", "fault", "cause", "detail", "hint"),
    [
        (
            "http/protobuf",
            Fault(http_status=413, message="request too big for this collector"),
            "HTTP 413",
            http_detail(413, "request too big for this collector"),
            TOO_LARGE_HINT,
        ),
        (
            "http/protobuf",
            Fault(http_status=400, message="malformed spans"),
            "HTTP 400",
            http_detail(400, "malformed spans"),
            "",
        ),
        (
            "grpc",
            Fault(grpc_code="INVALID_ARGUMENT", message="malformed spans"),
            "gRPC INVALID_ARGUMENT",
            "malformed spans",
            "",
        ),
    ],
    ids=["http-413", "http-400", "grpc-invalid-argument"],
)
def test_a_permanent_failure_is_not_retried_and_warned_about_once(
    receiver: OTLPReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    protocol: str,
    fault: Fault,
    cause: str,
    detail: str,
    hint: str,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3000")
    tracing = configure(endpoint_of(receiver, protocol), protocol)
    receiver.inject(fault)

    make_spans(3)
    elapsed = flush(tracing)

    assert (receiver.attempts, receiver.faults_served, receiver.span_count) == (1, 1, 0)
    stats = tracekit.stats()
    assert (stats.exported, stats.failed, stats.requests, stats.retries) == (0, 3, 1, 0)
    assert warnings_of(caplog) == [lost_line(target_of(receiver, protocol), 3, cause, detail, hint)]
    assert elapsed < 1.0


@pytest.mark.parametrize(
    ("protocol", "fault", "cause", "detail"),
    [
        ("http/protobuf", Fault(http_status=400, message=MESSAGE), "HTTP 400", http_detail(400, MESSAGE)),
        ("grpc", Fault(grpc_code="INVALID_ARGUMENT", message=MESSAGE), "gRPC INVALID_ARGUMENT", MESSAGE),
    ],
    ids=["http", "grpc"],
)
def test_repeated_failures_of_one_cause_are_one_line_then_a_summary_at_shutdown(
    receiver: OTLPReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    protocol: str,
    fault: Fault,
    cause: str,
    detail: str,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3000")
    tracing = configure(endpoint_of(receiver, protocol), protocol)
    receiver.inject(fault, fault, fault)
    target = target_of(receiver, protocol)

    for count in (2, 3, 4):
        make_spans(count)
        flush(tracing)

    assert receiver.attempts == 3
    assert tracekit.stats().failed == 9
    assert warnings_of(caplog) == [lost_line(target, 2, cause, detail)]

    tracing.shutdown(timeout=BOUND)

    assert warnings_of(caplog) == [
        lost_line(target, 2, cause, detail),
        lost_line(target, 7, cause, detail, since=True),
    ]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_partial_success_counts_the_rejected_spans(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, protocol: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3000")
    tracing = configure(endpoint_of(receiver, protocol), protocol)
    receiver.inject(Fault(rejected_spans=2, message="2 spans had no name"))

    make_spans(5)
    flush(tracing)

    assert (receiver.attempts, receiver.span_count) == (1, 5)  # the receiver records them all
    stats = tracekit.stats()
    assert (stats.exported, stats.rejected, stats.failed, stats.requests, stats.retries) == (3, 2, 0, 1, 0)
    assert warnings_of(caplog) == [
        lost_line(
            target_of(receiver, protocol),
            2,
            "rejected by the collector",
            "2 spans had no name",
            "the collector accepted the request but not these spans",
        )
    ]
    assert stats.last_error == "rejected by the collector: 2 spans had no name"


# --------------------------------------------------------------------------- time limits


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_collector_that_never_answers_is_given_up_on_within_the_timeout(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, protocol: str
) -> None:
    # A receiver of its own: stopping it ends the held-back answer, so nothing arrives late
    # in another test's receiver.
    with OTLPReceiver() as silent:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1000")
        tracing = configure(endpoint_of(silent, protocol), protocol)
        silent.inject(Fault(http_status=503, grpc_code="UNAVAILABLE", delay=10))

        make_spans(3)
        elapsed = flush(tracing)

        assert silent.attempts == 1
        assert silent.span_count == 0
        stats = tracekit.stats()
        assert (stats.exported, stats.failed, stats.requests) == (0, 3, 1)
        assert stats.last_error is not None
        assert stats.last_error.startswith("timeout: ")
        [line] = warnings_of(caplog)
        assert line.startswith(lost_line(target_of(silent, protocol), 3, "timeout") + " (")
        assert line.endswith(f"); {TIMEOUT_HINT}")
        assert 0.9 <= elapsed < 2.5
        tracing.shutdown(timeout=BOUND)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_refused_connection_is_retried_until_the_deadline(
    refusing_port: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, protocol: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3000")
    tracing = configure(f"http://127.0.0.1:{refusing_port}", protocol)

    make_spans(4)
    elapsed = flush(tracing)

    stats = tracekit.stats()
    assert stats.retries >= 1
    assert stats.requests == stats.retries + 1
    assert (stats.exported, stats.failed) == (0, 4)
    assert stats.last_error == "connection refused"
    # Back-off of about 1 s then 2 s: the next wait would pass the 3 s deadline, so it gives up.
    assert 0.7 <= elapsed < 3.5
    target = (
        f"http://127.0.0.1:{refusing_port}/v1/traces"
        if protocol == "http/protobuf"
        else (f"127.0.0.1:{refusing_port}")
    )
    assert warnings_of(caplog) == [lost_line(target, 4, "connection refused", hint=REFUSED_HINT)]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_refused_connection_is_not_retried_at_shutdown(
    refusing_port: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, protocol: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3000")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # only the shutdown flush exports them
    tracing = configure(f"http://127.0.0.1:{refusing_port}", protocol)
    processor = only_processor(tracing)

    make_spans(6)
    assert processor.queued == 6
    started = time.monotonic()
    tracing.shutdown(timeout=10)
    elapsed = time.monotonic() - started

    assert elapsed < 1.0
    counters = processor.counters  # stats() reads nothing once tracing is shut down
    assert (counters.exported, counters.failed, counters.requests, counters.retries) == (0, 6, 1, 0)
    assert processor.queued == 0
    target = (
        f"http://127.0.0.1:{refusing_port}/v1/traces"
        if protocol == "http/protobuf"
        else (f"127.0.0.1:{refusing_port}")
    )
    assert warnings_of(caplog) == [lost_line(target, 6, "connection refused", hint=REFUSED_HINT)]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_shutdown_cuts_short_a_back_off_from_a_refused_connection(
    refusing_port: int, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "10000")
    tracing = configure(f"http://127.0.0.1:{refusing_port}", protocol)
    processor = only_processor(tracing)
    make_spans(3)
    tracing.force_flush(timeout=0.01)  # the worker starts sending, and is refused
    deadline = time.monotonic() + BOUND
    while processor.counters.requests < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.1)
    # Refused once, now waiting about 1 s before the second attempt (counted as it is made).
    assert (processor.counters.requests, processor.counters.retries) == (1, 0)

    started = time.monotonic()
    tracing.shutdown(timeout=10)
    elapsed = time.monotonic() - started

    counters = processor.counters
    assert (counters.exported, counters.failed) == (0, 3)
    assert counters.requests == 1  # no retry of a refused connection once shutdown began
    assert elapsed < 0.5


# --------------------------------------------------------------------------- counters


def test_counters_add_up_under_a_burst_from_eight_threads(receiver: OTLPReceiver) -> None:
    tracing = configure(receiver.http_endpoint, "http/protobuf")
    per_thread, threads = 5_000, 8
    start = threading.Barrier(threads)

    def burst(index: int) -> None:
        start.wait(BOUND)
        for number in range(per_thread):
            with tracekit.span(f"burst-{index}-{number}"):
                pass

    workers = [threading.Thread(target=burst, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert tracing.force_flush(timeout=BOUND) is True

    stats = tracekit.stats()
    assert stats.exported + stats.dropped + stats.failed + stats.rejected == per_thread * threads
    assert stats.queued == 0
    assert (stats.failed, stats.rejected) == (0, 0)
    assert stats.exported == receiver.span_count
    assert len({span.span_id for span in receiver.spans}) == receiver.span_count  # none twice
    assert stats.requests == len(receiver.requests) >= 1
    assert stats.bytes_sent == sum(request.body_size for request in receiver.requests) > 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_batch_is_split_into_requests_within_the_size_limit(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")
    tracing = configure(endpoint_of(receiver, protocol), protocol, export_max_request_size=65536)
    names = [f"big-{index}" for index in range(512)]
    for index, name in enumerate(names):
        with tracekit.span(name, payload=f"{index:05d}" + "x" * 4091):
            pass

    assert tracing.force_flush(timeout=BOUND) is True

    spans = receiver.wait_for_spans(512, timeout=BOUND)
    assert sorted(span.name for span in spans) == sorted(names)  # each exactly once
    assert all(len(span.attributes["payload"]) == 4096 for span in spans)
    sizes = [request.body_size for request in receiver.requests]
    assert len(sizes) >= 512 * 4096 // 65536
    assert max(sizes) <= 65536
    stats = tracekit.stats()
    assert (stats.exported, stats.failed, stats.truncated) == (512, 0, 0)
    assert stats.requests == len(sizes)
    if protocol == "http/protobuf":
        assert stats.bytes_sent == sum(sizes)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_one_huge_span_is_cut_and_costs_no_other_span(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # all 41 in one batch
    tracing = configure(endpoint_of(receiver, protocol), protocol)
    huge = "0123456789" * 1_000_000  # 10 MB
    small = make_spans(20, "before")
    with tracekit.span("huge", payload=huge, note="kept"):
        pass
    small += make_spans(20, "after")

    assert tracing.force_flush(timeout=BOUND) is True

    receiver.wait_for_spans(40, timeout=BOUND)
    spans = receiver.spans  # the flush is over: whatever was delivered has been recorded
    by_name = {span.name: span for span in spans}
    assert len(spans) == len(by_name)  # none twice
    assert sorted(by_name) == sorted([*small, "huge"])
    cut = by_name.pop("huge")
    assert cut.attributes["tracekit.truncated"] == 1
    assert cut.attributes["note"] == "kept"
    payload = cut.attributes["payload"]
    assert 3_500_000 < len(payload) < 4 * 1024 * 1024
    assert huge.startswith(payload)
    assert all("tracekit.truncated" not in span.attributes for span in by_name.values())
    assert max(request.body_size for request in receiver.requests) <= 4 * 1024 * 1024
    stats = tracekit.stats()
    assert (stats.exported, stats.failed, stats.truncated) == (41, 0, 1)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_huge_event_value_is_cut_and_marked(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")
    tracing = configure(endpoint_of(receiver, protocol), protocol)
    huge = "abcdefghij" * 1_000_000  # 10 MB
    small = make_spans(5)
    with tracekit.span("dump") as span:
        span.add_event("payload", {"body": huge})

    assert tracing.force_flush(timeout=BOUND) is True

    spans = receiver.wait_for_spans(6, timeout=BOUND)
    assert sorted(span.name for span in spans) == sorted([*small, "dump"])
    [cut] = [span for span in spans if span.name == "dump"]
    [event] = cut.events
    body = event.attributes["body"]
    assert 3_500_000 < len(body) < 4 * 1024 * 1024
    assert huge.startswith(body)
    stats = tracekit.stats()
    assert (stats.exported, stats.failed, stats.truncated) == (6, 0, 1)
    assert cut.attributes.get("tracekit.truncated") == 1


# --------------------------------------------------------------------------- @traced values


@pytest.mark.parametrize(("limit", "expected"), [(None, 4096), ("100", 100)])
def test_traced_records_huge_arguments_cut_to_the_limit(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, limit: str | None, expected: int
) -> None:
    if limit is not None:
        monkeypatch.setenv("TRACEKIT_TRACED_VALUE_LENGTH_LIMIT", limit)
    tracing = configure(receiver.http_endpoint, "http/protobuf")

    @tracekit.traced(record_args=True, record_result=True)
    def store(payload: str, numbers: list[int]) -> str:
        return payload

    huge = "abcdefghij" * 1_000_000
    numbers = list(range(100_000))
    store(huge, numbers)
    assert tracing.force_flush(timeout=BOUND) is True

    [span] = receiver.wait_for_spans(1, timeout=BOUND)
    assert span.name.endswith("store")
    assert span.attributes["tracekit.arg.payload"] == huge[:expected]
    assert span.attributes["tracekit.result"] == huge[:expected]
    assert span.attributes["tracekit.arg.numbers"] == repr(numbers)[:expected]
    assert "tracekit.truncated" not in span.attributes
    assert tracekit.stats().truncated == 0


# --------------------------------------------------------------------------- stats()


def test_stats_before_configure_are_empty() -> None:
    # In a process of its own: after shutdown(), stats() keeps the last configuration's counts.
    code = "import tracekit; s = tracekit.stats(); print(repr(s))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == repr(ExportStats())
    stats = ExportStats()
    assert (stats.exported, stats.dropped, stats.failed, stats.rejected, stats.truncated) == (0, 0, 0, 0, 0)
    assert (stats.requests, stats.retries, stats.bytes_sent, stats.queued) == (0, 0, 0, 0)
    assert (stats.last_error, stats.last_error_time) == (None, None)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_stats_remember_the_last_error_and_when(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3000")
    tracing = configure(endpoint_of(receiver, protocol), protocol)
    make_spans(2)
    flush(tracing)
    assert (tracekit.stats().last_error, tracekit.stats().last_error_time) == (None, None)

    receiver.inject(Fault(http_status=400, grpc_code="INVALID_ARGUMENT", message=MESSAGE))
    before = time.time()
    make_spans(3)
    flush(tracing)
    after = time.time()

    stats = tracekit.stats()
    assert (stats.exported, stats.failed) == (2, 3)
    if protocol == "http/protobuf":
        assert stats.last_error == f"HTTP 400: {http_detail(400, MESSAGE)}"
    else:
        assert stats.last_error == f"gRPC INVALID_ARGUMENT: {MESSAGE}"
    assert stats.last_error_time is not None
    assert before <= stats.last_error_time <= after


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls_receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OTLPReceiver, str]]:
    """A receiver speaking TLS with a certificate from a CA of its own, and that CA's PEM file."""
    trustme = pytest.importorskip("trustme")
    directory = tmp_path_factory.mktemp("faults-tls")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, chain_file, key_file = (directory / name for name in ("ca.pem", "chain.pem", "key.pem"))
    ca.cert_pem.write_to_path(str(ca_file))
    chain_file.write_bytes(b"".join(pem.bytes() for pem in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(key_file))
    with OTLPReceiver(certfile=chain_file, keyfile=key_file) as started:
        yield started, str(ca_file)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_retries_over_tls(
    tls_receiver: tuple[OTLPReceiver, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    protocol: str,
) -> None:
    receiver, ca_file = tls_receiver
    receiver.clear()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", ca_file)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3000")
    tracing = configure(endpoint_of(receiver, protocol), protocol)
    receiver.inject(Fault(http_status=503, grpc_code="UNAVAILABLE", retry_after=0, message=MESSAGE))

    names = make_spans(3)
    flush(tracing)

    assert sorted(span.name for span in receiver.wait_for_spans(3, timeout=BOUND)) == names
    assert (receiver.attempts, receiver.span_count, receiver.errors) == (2, 3, [])
    stats = tracekit.stats()
    assert (stats.exported, stats.failed, stats.requests, stats.retries) == (3, 0, 2, 1)
    assert warnings_of(caplog) == []
