"""OTLPReceiver's injected faults, seen by real clients over loopback sockets."""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from tracekit._receiver import Fault, OTLPReceiver

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
HEADERS = {"Content-Type": "application/x-protobuf"}


def export_request(*names: str) -> bytes:
    """A serialized ExportTraceServiceRequest with one span per name."""
    spans = [
        Span(
            trace_id=bytes([1] * 16),
            span_id=bytes([index + 1] * 8),
            name=name,
            kind=Span.SPAN_KIND_INTERNAL,
            start_time_unix_nano=1_000,
            end_time_unix_nano=2_000,
        )
        for index, name in enumerate(names)
    ]
    service = KeyValue(key="service.name", value=AnyValue(string_value="faults"))
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[service]),
                scope_spans=[ScopeSpans(scope=InstrumentationScope(name="test"), spans=spans)],
            )
        ]
    )
    return request.SerializeToString()


def post(receiver: OTLPReceiver, body: bytes, timeout: float = 5.0) -> httpx.Response:
    return httpx.post(receiver.http_traces_endpoint, content=body, headers=HEADERS, timeout=timeout)


def grpc_export(receiver: OTLPReceiver, body: bytes, timeout: float = 5.0) -> bytes:
    with grpc.insecure_channel(f"127.0.0.1:{receiver.grpc_port}") as channel:
        export = channel.unary_unary(EXPORT_METHOD, request_serializer=None, response_deserializer=None)
        response: bytes = export(body, timeout=timeout)
        return response


def grpc_error(receiver: OTLPReceiver, body: bytes, timeout: float = 5.0) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        grpc_export(receiver, body, timeout)
    error: Any = info.value
    return error


def rich_status(error: Any) -> status_pb2.Status | None:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    return None


# --------------------------------------------------------------------------- OTLP/HTTP


@pytest.mark.parametrize(
    ("http_status", "code"),
    [
        (429, code_pb2.UNAVAILABLE),
        (502, code_pb2.UNAVAILABLE),
        (503, code_pb2.UNAVAILABLE),
        (504, code_pb2.UNAVAILABLE),
        (413, code_pb2.UNKNOWN),
        (400, code_pb2.INTERNAL),
    ],
)
def test_http_status_fault_answers_with_a_google_rpc_status(http_status: int, code: int) -> None:
    with OTLPReceiver() as receiver:
        receiver.inject(Fault(http_status=http_status))
        response = post(receiver, export_request("a", "b"))
        assert response.status_code == http_status
        assert response.headers["content-type"] == "application/x-protobuf"
        assert "retry-after" not in response.headers
        status = status_pb2.Status.FromString(response.content)
        assert status.message == "fault injected by OTLPReceiver"
        assert status.code == code
        assert receiver.spans == []
        assert receiver.span_count == 0
        assert receiver.requests == []
        assert (receiver.attempts, receiver.faults_served) == (1, 1)
        assert receiver.errors == []


@pytest.mark.parametrize(("retry_after", "header"), [(2, "2"), (1.0, "1"), (0.2, "1"), (2.5, "3"), (0, "0")])
def test_http_retry_after_is_whole_seconds_rounded_up(retry_after: float, header: str) -> None:
    with OTLPReceiver() as receiver:
        receiver.inject(Fault(http_status=503, retry_after=retry_after, message="come back later"))
        response = post(receiver, export_request("a"))
        assert response.status_code == 503
        assert response.headers["retry-after"] == header
        assert status_pb2.Status.FromString(response.content).message == "come back later"


def test_http_status_fault_names_the_grpc_code_when_given() -> None:
    with OTLPReceiver() as receiver:
        receiver.inject(Fault(http_status=400, grpc_code="INVALID_ARGUMENT", message="bad spans"))
        response = post(receiver, export_request("a"))
        assert response.status_code == 400
        status = status_pb2.Status.FromString(response.content)
        assert (status.code, status.message) == (code_pb2.INVALID_ARGUMENT, "bad spans")


def test_http_partial_success_records_the_spans() -> None:
    with OTLPReceiver() as receiver:
        receiver.inject(Fault(rejected_spans=1, message="one span too many"))
        response = post(receiver, export_request("a", "b"))
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-protobuf"
        answer = ExportTraceServiceResponse.FromString(response.content)
        assert answer.HasField("partial_success")
        assert answer.partial_success.rejected_spans == 1
        assert answer.partial_success.error_message == "one span too many"
        assert [span.name for span in receiver.spans] == ["a", "b"]
        assert receiver.span_count == 2
        assert (receiver.attempts, receiver.faults_served) == (1, 1)


def test_http_faults_are_taken_in_order_then_requests_succeed() -> None:
    with OTLPReceiver() as receiver, httpx.Client(timeout=5.0) as client:
        receiver.inject(
            Fault(http_status=503, retry_after=1),
            Fault(http_status=429, retry_after=2),
            Fault(rejected_spans=2),
        )
        statuses = []
        answers: list[ExportTraceServiceResponse] = []
        for name in ("first", "second", "third", "fourth", "fifth"):
            body = export_request(name)
            response = client.post(receiver.http_traces_endpoint, content=body, headers=HEADERS)
            statuses.append((response.status_code, response.headers.get("retry-after")))
            if response.status_code == 200:
                answers.append(ExportTraceServiceResponse.FromString(response.content))
        assert statuses == [(503, "1"), (429, "2"), (200, None), (200, None), (200, None)]
        assert [answer.partial_success.rejected_spans for answer in answers] == [2, 0, 0]
        assert [answer.HasField("partial_success") for answer in answers] == [True, False, False]
        assert [span.name for span in receiver.spans] == ["third", "fourth", "fifth"]
        assert receiver.span_count == 3
        assert (receiver.attempts, receiver.faults_served) == (5, 3)


def test_http_success_status_fault_records_the_spans() -> None:
    with OTLPReceiver() as receiver:
        receiver.inject(Fault(http_status=202, retry_after=3))
        response = post(receiver, export_request("a"))
        assert response.status_code == 202
        assert response.headers["retry-after"] == "3"
        assert ExportTraceServiceResponse.FromString(response.content) == ExportTraceServiceResponse()
        assert [span.name for span in receiver.spans] == ["a"]


def test_http_malformed_request_takes_no_fault() -> None:
    with OTLPReceiver() as receiver:
        receiver.inject(Fault(http_status=503))
        refused = post(receiver, b"\xff\xff")
        assert refused.status_code == 400
        assert (receiver.attempts, receiver.faults_served) == (0, 0)
        assert post(receiver, export_request("a")).status_code == 503
        assert (receiver.attempts, receiver.faults_served) == (1, 1)


def test_http_delay_outlasts_the_client_timeout_and_stop_is_prompt() -> None:
    receiver = OTLPReceiver()
    with receiver:
        receiver.inject(Fault(delay=5))
        started = time.monotonic()
        with pytest.raises(httpx.TimeoutException):
            post(receiver, export_request("late"), timeout=0.3)
        assert time.monotonic() - started < 2
        assert receiver.attempts == 1

        # A second delayed request is still waiting when the receiver stops.
        receiver.inject(Fault(delay=5))
        outcome: list[BaseException | int] = []

        def send() -> None:
            try:
                outcome.append(post(receiver, export_request("never"), timeout=10).status_code)
            except BaseException as exc:
                outcome.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        deadline = time.monotonic() + 5
        while receiver.attempts < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert receiver.attempts == 2
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 3
    sender.join(5)
    assert not sender.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], httpx.TransportError)
    assert receiver.spans == []
    assert receiver.faults_served == 2


def test_http_delay_then_normal_answer() -> None:
    with OTLPReceiver() as receiver:
        receiver.inject(Fault(delay=0.3))
        started = time.monotonic()
        response = post(receiver, export_request("slow"))
        assert time.monotonic() - started >= 0.3
        assert response.status_code == 200
        assert [span.name for span in receiver.spans] == ["slow"]


# --------------------------------------------------------------------------- OTLP/gRPC


@pytest.mark.parametrize("code", ["UNAVAILABLE", "RESOURCE_EXHAUSTED", "INVALID_ARGUMENT"])
def test_grpc_code_fault_aborts_the_call(code: str) -> None:
    with OTLPReceiver() as receiver:
        receiver.inject(Fault(grpc_code=code, message="collector trouble"))
        error: Any = grpc_error(receiver, export_request("a", "b"))
        assert error.code() == grpc.StatusCode[code]
        assert error.details() == "collector trouble"
        assert rich_status(error) is None
        assert receiver.spans == []
        assert receiver.span_count == 0
        assert (receiver.attempts, receiver.faults_served) == (1, 1)


def test_grpc_retry_after_is_a_retry_info_detail() -> None:
    with OTLPReceiver() as receiver:
        receiver.inject(Fault(grpc_code="UNAVAILABLE", retry_after=1.5))
        error: Any = grpc_error(receiver, export_request("a"))
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert error.details() == "fault injected by OTLPReceiver"
        status = rich_status(error)
        assert status is not None
        assert status.code == code_pb2.UNAVAILABLE
        assert status.message == "fault injected by OTLPReceiver"
        [detail] = status.details
        assert detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR)
        retry_info = error_details_pb2.RetryInfo()
        assert detail.Unpack(retry_info)
        assert retry_info.retry_delay == Duration(seconds=1, nanos=500_000_000)
        assert retry_info.retry_delay.ToNanoseconds() == 1_500_000_000


def test_grpc_partial_success_records_the_spans() -> None:
    with OTLPReceiver() as receiver:
        receiver.inject(Fault(rejected_spans=3, message="dropped three"))
        answer = ExportTraceServiceResponse.FromString(grpc_export(receiver, export_request("a", "b", "c")))
        assert answer.partial_success.rejected_spans == 3
        assert answer.partial_success.error_message == "dropped three"
        assert [span.name for span in receiver.spans] == ["a", "b", "c"]
        assert {span.protocol for span in receiver.spans} == {"grpc"}
        assert (receiver.attempts, receiver.faults_served) == (1, 1)


def test_grpc_faults_in_order_then_success() -> None:
    with OTLPReceiver() as receiver:
        receiver.inject(Fault(grpc_code="UNAVAILABLE"), Fault(grpc_code="RESOURCE_EXHAUSTED"))
        assert grpc_error(receiver, export_request("one")).code() == grpc.StatusCode.UNAVAILABLE
        assert grpc_error(receiver, export_request("two")).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        answer = ExportTraceServiceResponse.FromString(grpc_export(receiver, export_request("three")))
        assert answer == ExportTraceServiceResponse()
        assert [span.name for span in receiver.spans] == ["three"]
        assert (receiver.attempts, receiver.faults_served) == (3, 2)


def test_grpc_delay_outlasts_the_deadline_and_stop_is_prompt() -> None:
    receiver = OTLPReceiver()
    with receiver:
        receiver.inject(Fault(delay=5))
        started = time.monotonic()
        error = grpc_error(receiver, export_request("late"), timeout=0.3)
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 2
        assert receiver.attempts == 1
        stopping = time.monotonic()
    # The handler still waits out its delay when the receiver stops: stop() ends it.
    assert time.monotonic() - stopping < 3
    assert receiver.spans == []


# --------------------------------------------------------------------------- both


def test_faults_are_shared_by_both_transports_in_arrival_order() -> None:
    with OTLPReceiver() as receiver:
        receiver.inject(
            Fault(http_status=503, grpc_code="UNAVAILABLE"),
            Fault(http_status=502, grpc_code="UNAVAILABLE"),
        )
        assert grpc_error(receiver, export_request("g")).code() == grpc.StatusCode.UNAVAILABLE
        assert post(receiver, export_request("h")).status_code == 502
        assert post(receiver, export_request("ok")).status_code == 200
        assert [span.name for span in receiver.spans] == ["ok"]
        assert (receiver.attempts, receiver.faults_served) == (3, 2)


def test_a_fault_for_the_other_transport_answers_normally() -> None:
    with OTLPReceiver() as receiver:
        receiver.inject(Fault(grpc_code="UNAVAILABLE"), Fault(http_status=503))
        assert post(receiver, export_request("http")).status_code == 200
        assert ExportTraceServiceResponse.FromString(grpc_export(receiver, export_request("grpc")))
        assert [span.name for span in receiver.spans] == ["http", "grpc"]
        assert (receiver.attempts, receiver.faults_served) == (2, 2)


def test_clear_forgets_faults_and_counters() -> None:
    with OTLPReceiver() as receiver:
        receiver.inject(Fault(http_status=503), Fault(http_status=503))
        assert post(receiver, export_request("a")).status_code == 503
        receiver.clear()
        assert (receiver.attempts, receiver.faults_served) == (0, 0)
        assert post(receiver, export_request("b")).status_code == 200
        assert [span.name for span in receiver.spans] == ["b"]
        assert (receiver.attempts, receiver.faults_served) == (1, 0)


@pytest.mark.parametrize(
    "arguments",
    [
        {"http_status": 99},
        {"http_status": 600},
        {"grpc_code": "OK"},
        {"grpc_code": "unavailable"},
        {"grpc_code": "NO_SUCH_CODE"},
        {"retry_after": -1},
        {"retry_after": float("nan")},
        {"delay": -0.5},
        {"delay": float("inf")},
        {"rejected_spans": -1},
    ],
)
def test_invalid_faults_are_refused(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="Fault"):
        Fault(**arguments)


def test_inject_takes_only_faults() -> None:
    receiver = OTLPReceiver()
    with pytest.raises(TypeError):
        receiver.inject(503)  # type: ignore[arg-type]
