"""OTLP export end to end, against a real receiver decoding the official protobuf messages."""

from __future__ import annotations

import gzip
import http.client
import importlib
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
import trustme
from opentelemetry.sdk.version import __version__ as sdk_version
from opentelemetry.trace import SpanKind, StatusCode

import tracekit
from tracekit import Tracing
from tracekit.testing import OTLPReceiver

BOUND = 10.0
PROTOCOLS = ["http/protobuf", "grpc"]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as started:
        yield started


@dataclass(frozen=True)
class TLSFiles:
    ca: str
    wrong_ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    directory = tmp_path_factory.mktemp("tls")
    ca, wrong_ca = trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client.tracekit.test", common_name="client.tracekit.test")

    def write(name: str, blob: Any) -> str:
        path = directory / name
        blob.write_to_path(str(path))
        return str(path)

    server_chain = directory / "server-chain.pem"
    server_chain.write_bytes(b"".join(pem.bytes() for pem in server.cert_chain_pems))
    client_chain = directory / "client-chain.pem"
    client_chain.write_bytes(b"".join(pem.bytes() for pem in client.cert_chain_pems))
    return TLSFiles(
        ca=write("ca.pem", ca.cert_pem),
        wrong_ca=write("wrong-ca.pem", wrong_ca.cert_pem),
        server_cert=str(server_chain),
        server_key=write("server-key.pem", server.private_key_pem),
        client_cert=str(client_chain),
        client_key=write("client-key.pem", client.private_key_pem),
    )


@pytest.fixture
def tls_receiver(tls_files: TLSFiles) -> Iterator[OTLPReceiver]:
    with OTLPReceiver(certfile=tls_files.server_cert, keyfile=tls_files.server_key) as started:
        yield started


@pytest.fixture
def mtls_receiver(tls_files: TLSFiles) -> Iterator[OTLPReceiver]:
    with OTLPReceiver(
        certfile=tls_files.server_cert, keyfile=tls_files.server_key, client_ca_file=tls_files.ca
    ) as started:
        yield started


def endpoint_of(receiver: OTLPReceiver, protocol: str) -> str:
    return receiver.http_endpoint if protocol == "http/protobuf" else receiver.grpc_endpoint


def traces_path(protocol: str) -> str:
    return (
        "/v1/traces"
        if protocol == "http/protobuf"
        else "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    )


# --------------------------------------------------------------------------- a known trace


@dataclass(frozen=True)
class SentTrace:
    trace_id: str
    root_id: str
    client_id: str
    step_id: str


def send_trace(tracing: Tracing) -> SentTrace:
    """A server span with a client child and an internal child that failed; flushed."""
    tracer = tracing.provider.get_tracer("tests.export", "2.1.0")
    with tracer.start_as_current_span(
        "GET /checkout/{cart_id}",
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "GET", "http.route": "/checkout/{cart_id}"},
    ) as root:
        with tracer.start_as_current_span(
            "GET",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": "GET",
                "url.full": "http://inventory.internal/items?cart=42",
                "server.port": 80,
                "http.response.status_code": 200,
            },
        ) as client:
            pass
        with tracer.start_as_current_span("reserve_inventory") as step:
            step.set_attribute("tracekit.items", ("sku-1", "sku-2"))
            step.set_attribute("tracekit.ratio", 0.25)
            step.set_attribute("tracekit.reserved", False)
            step.set_status(StatusCode.ERROR, "out of stock")
        root.set_attribute("http.response.status_code", 409)
    assert tracing.force_flush(timeout=BOUND) is True
    return SentTrace(
        trace_id=f"{root.get_span_context().trace_id:032x}",
        root_id=f"{root.get_span_context().span_id:016x}",
        client_id=f"{client.get_span_context().span_id:016x}",
        step_id=f"{step.get_span_context().span_id:016x}",
    )


def assert_trace_arrived(receiver: OTLPReceiver, sent: SentTrace, protocol: str) -> None:
    spans = receiver.wait_for_spans(3, timeout=BOUND)
    assert len(spans) == 3
    by_name = {span.name: span for span in spans}
    assert sorted(by_name) == ["GET", "GET /checkout/{cart_id}", "reserve_inventory"]
    root, client, step = by_name["GET /checkout/{cart_id}"], by_name["GET"], by_name["reserve_inventory"]

    assert {span.trace_id for span in spans} == {sent.trace_id}
    assert (root.span_id, root.parent_span_id) == (sent.root_id, None)
    assert (client.span_id, client.parent_span_id) == (sent.client_id, sent.root_id)
    assert (step.span_id, step.parent_span_id) == (sent.step_id, sent.root_id)
    assert (root.kind, client.kind, step.kind) == (SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL)

    assert root.attributes == {
        "http.request.method": "GET",
        "http.route": "/checkout/{cart_id}",
        "http.response.status_code": 409,
    }
    assert client.attributes == {
        "http.request.method": "GET",
        "url.full": "http://inventory.internal/items?cart=42",
        "server.port": 80,
        "http.response.status_code": 200,
    }
    assert step.attributes == {
        "tracekit.items": ("sku-1", "sku-2"),
        "tracekit.ratio": 0.25,
        "tracekit.reserved": False,
    }
    assert (step.status_code, step.status_message) == (StatusCode.ERROR, "out of stock")
    assert (root.status_code, client.status_code) == (StatusCode.UNSET, StatusCode.UNSET)
    assert {(span.scope_name, span.scope_version) for span in spans} == {("tests.export", "2.1.0")}
    assert all(span.start_time_unix_nano <= span.end_time_unix_nano for span in spans)
    assert root.start_time_unix_nano <= client.start_time_unix_nano <= client.end_time_unix_nano
    assert step.end_time_unix_nano <= root.end_time_unix_nano
    wire = "http" if protocol == "http/protobuf" else "grpc"
    assert {span.protocol for span in spans} == {wire}
    assert {request.path for request in receiver.requests} == {traces_path(protocol)}


def expected_resource(service_name: str, **extra: Any) -> dict[str, Any]:
    return {
        "service.name": service_name,
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": sdk_version,
        "telemetry.distro.name": "tracekit",
        "telemetry.distro.version": tracekit.__version__,
        "process.pid": os.getpid(),
        "host.name": socket.gethostname(),
        **extra,
    }


def resource_without_instance_id(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The resource minus service.instance.id, after checking that one is a random UUID."""
    rest = dict(resource)
    assert uuid.UUID(rest.pop("service.instance.id")).version == 4
    return rest


# --------------------------------------------------------------------------- transports


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_spans_arrive_configured_by_environment(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "checkout-api")
    monkeypatch.setenv(
        "OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=staging,team.name=checkout%20core"
    )
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint_of(receiver, protocol))

    sent = send_trace(tracekit.configure())

    assert_trace_arrived(receiver, sent, protocol)
    [request] = receiver.requests
    assert [span.name for span in request.spans] == ["GET", "reserve_inventory", "GET /checkout/{cart_id}"]
    assert len(request.message.resource_spans) == 1
    assert resource_without_instance_id(request.spans[0].resource) == expected_resource(
        "checkout-api", **{"deployment.environment.name": "staging", "team.name": "checkout core"}
    )
    assert request.content_encoding is None
    if protocol == "http/protobuf":
        assert request.headers["content-type"] == "application/x-protobuf"
        assert "content-encoding" not in request.headers


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_spans_arrive_configured_by_keywords(receiver: OTLPReceiver, protocol: str) -> None:
    tracing = tracekit.configure(
        service_name="payments",
        service_version="3.4.5",
        environment="production",
        resource_attributes={"cloud.region": "eu-west-1"},
        protocol=protocol,
        endpoint=endpoint_of(receiver, protocol),
    )

    sent = send_trace(tracing)

    assert_trace_arrived(receiver, sent, protocol)
    assert resource_without_instance_id(receiver.spans[0].resource) == expected_resource(
        "payments",
        **{
            "service.version": "3.4.5",
            "deployment.environment.name": "production",
            "cloud.region": "eu-west-1",
        },
    )


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_gzip_compression(receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, protocol: str) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    tracing = tracekit.configure(
        service_name="gzip", protocol=protocol, endpoint=endpoint_of(receiver, protocol)
    )

    sent = send_trace(tracing)

    assert_trace_arrived(receiver, sent, protocol)
    [request] = receiver.requests
    if protocol == "http/protobuf":
        assert request.content_encoding == "gzip"
        assert request.headers["content-encoding"] == "gzip"
        assert request.body_size == int(request.headers["content-length"])
        assert request.body_size != request.message.ByteSize()  # what travelled was the gzip stream
    else:
        # gRPC decompresses below the application; check the channel asked for gzip.
        import grpc

        [processor] = tracing.provider._active_span_processor._span_processors
        assert processor.exporter._transport._compression == grpc.Compression.Gzip


def test_traces_compression_variable_wins(receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "none")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_endpoint)

    send_trace(tracekit.configure(service_name="gzip"))

    receiver.wait_for_spans(3, timeout=BOUND)
    assert [request.content_encoding for request in receiver.requests] == ["gzip"]


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_headers_arrive_percent_decoded(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint_of(receiver, protocol))
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20abc%3D%3D,X-Tenant=acme%2Cinc , x-empty="
    )

    send_trace(tracekit.configure(service_name="headers"))

    receiver.wait_for_spans(3, timeout=BOUND)
    [request] = receiver.requests
    assert request.headers["authorization"] == "Bearer abc=="
    assert request.headers["x-tenant"] == "acme,inc"
    assert request.headers["x-empty"] == ""
    user_agent = f"OTel-OTLP-Exporter-Python/{tracekit.__version__} (tracekit)"
    assert request.headers["user-agent"].startswith(user_agent)  # gRPC appends its own


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_traces_headers_variable_wins_over_the_general_one(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint_of(receiver, protocol))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=general,x-general-only=1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=traces%2Fv1")

    send_trace(tracekit.configure(service_name="headers"))

    receiver.wait_for_spans(3, timeout=BOUND)
    [request] = receiver.requests
    assert request.headers["x-tenant"] == "traces/v1"
    assert "x-general-only" not in request.headers


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_keyword_headers_win_over_the_environment(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=from-env,x-env-only=1")

    tracing = tracekit.configure(
        service_name="headers",
        protocol=protocol,
        endpoint=endpoint_of(receiver, protocol),
        headers={"X-Tenant": "from keyword"},
    )
    send_trace(tracing)

    receiver.wait_for_spans(3, timeout=BOUND)
    [request] = receiver.requests
    assert request.headers["x-tenant"] == "from keyword"
    assert "x-env-only" not in request.headers  # the keyword replaces the variable, it does not merge


# --------------------------------------------------------------------------- endpoint rules


def test_base_endpoint_gets_v1_traces_appended(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_endpoint + "/")

    send_trace(tracekit.configure(service_name="endpoints"))

    receiver.wait_for_spans(3, timeout=BOUND)
    assert [request.path for request in receiver.requests] == ["/v1/traces"]
    assert receiver.errors == []


def test_base_endpoint_with_a_path_prefix_keeps_it(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_endpoint + "/collector")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "500")
    tracing = tracekit.configure(service_name="endpoints")

    tracing.provider.get_tracer("tests").start_span("one").end()
    tracing.force_flush(timeout=BOUND)

    assert receiver.wait_for_errors(1, timeout=BOUND)[0] == (
        "http: POST /collector/v1/traces: only /v1/traces is served"
    )
    assert receiver.span_count == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_traces_endpoint_is_used_as_is_and_wins(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    with OTLPReceiver() as decoy:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint_of(decoy, protocol))
        traces_endpoint = (
            receiver.http_traces_endpoint if protocol == "http/protobuf" else receiver.grpc_endpoint
        )
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces_endpoint)

        sent = send_trace(tracekit.configure(service_name="endpoints"))

        assert_trace_arrived(receiver, sent, protocol)
        assert (decoy.span_count, decoy.errors) == (0, [])


def test_traces_endpoint_gets_nothing_appended(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.http_endpoint + "/custom/spans")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "500")
    tracing = tracekit.configure(service_name="endpoints")

    tracing.provider.get_tracer("tests").start_span("one").end()
    tracing.force_flush(timeout=BOUND)

    assert receiver.wait_for_errors(1, timeout=BOUND)[0] == (
        "http: POST /custom/spans: only /v1/traces is served"
    )
    assert receiver.span_count == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_keyword_endpoint_wins_over_both_variables(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    with OTLPReceiver() as decoy_base, OTLPReceiver() as decoy_traces:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint_of(decoy_base, protocol))
        if protocol == "http/protobuf":
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", decoy_traces.http_traces_endpoint)
        else:
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", decoy_traces.grpc_endpoint)

        sent = send_trace(
            tracekit.configure(service_name="endpoints", endpoint=endpoint_of(receiver, protocol))
        )

        assert_trace_arrived(receiver, sent, protocol)
        assert (decoy_base.span_count, decoy_base.errors) == (0, [])
        assert (decoy_traces.span_count, decoy_traces.errors) == (0, [])


def test_grpc_endpoint_without_scheme_and_insecure(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"127.0.0.1:{receiver.grpc_port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")

    sent = send_trace(tracekit.configure(service_name="endpoints"))

    assert_trace_arrived(receiver, sent, "grpc")


def test_grpc_endpoint_without_scheme_uses_tls_by_default(
    tls_receiver: OTLPReceiver, tls_files: TLSFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"127.0.0.1:{tls_receiver.grpc_port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", tls_files.ca)

    sent = send_trace(tracekit.configure(service_name="endpoints"))

    assert_trace_arrived(tls_receiver, sent, "grpc")


# --------------------------------------------------------------------------- TLS


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_tls_with_a_ca_from_the_environment(
    tls_receiver: OTLPReceiver, tls_files: TLSFiles, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint_of(tls_receiver, protocol))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", tls_files.ca)
    # A machine-wide CA bundle in the environment must not replace the configured one.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_files.wrong_ca)
    monkeypatch.setenv("CURL_CA_BUNDLE", tls_files.wrong_ca)

    sent = send_trace(tracekit.configure(service_name="tls"))

    assert_trace_arrived(tls_receiver, sent, protocol)
    assert tls_receiver.http_endpoint.startswith("https://")
    assert [request.client_common_name for request in tls_receiver.requests] == [None]
    assert tls_receiver.errors == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_mutual_tls_with_client_key_and_certificate(
    mtls_receiver: OTLPReceiver, tls_files: TLSFiles, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint_of(mtls_receiver, protocol))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", tls_files.ca)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_KEY", tls_files.client_key)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", tls_files.client_cert)

    sent = send_trace(tracekit.configure(service_name="mtls"))

    assert_trace_arrived(mtls_receiver, sent, protocol)
    assert [request.client_common_name for request in mtls_receiver.requests] == ["client.tracekit.test"]


def test_mutual_tls_without_a_client_certificate_fails_clearly(
    mtls_receiver: OTLPReceiver,
    tls_files: TLSFiles,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", mtls_receiver.http_endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", tls_files.ca)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "500")
    tracing = tracekit.configure(service_name="mtls")

    tracing.provider.get_tracer("tests").start_span("one").end()
    tracing.force_flush(timeout=BOUND)

    assert mtls_receiver.span_count == 0
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in mtls_receiver.wait_for_errors(1, timeout=BOUND)[0]
    [tls_line] = [r.getMessage() for r in caplog.records if r.name == "tracekit"]
    assert tls_line.startswith(
        f"tracekit: 1 spans could not be delivered to {mtls_receiver.http_traces_endpoint}: "
        "TLS handshake failed ("
    )
    assert tls_line.endswith(
        "; if the collector requires a client certificate, set OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE "
        "and OTEL_EXPORTER_OTLP_CLIENT_KEY; if it speaks plain text, use an http:// endpoint"
    )


def test_wrong_ca_over_http_fails_with_a_clear_warning(
    tls_receiver: OTLPReceiver,
    tls_files: TLSFiles,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", tls_receiver.http_endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", tls_files.wrong_ca)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "500")
    tracing = tracekit.configure(service_name="tls")

    tracing.provider.get_tracer("tests").start_span("one").end()
    tracing.force_flush(timeout=BOUND)

    assert tls_receiver.span_count == 0
    assert "TLSV1_ALERT_UNKNOWN_CA" in tls_receiver.wait_for_errors(1, timeout=BOUND)[0]
    tracekit_lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "tracekit"]
    assert tracekit_lines == [
        (
            logging.WARNING,
            f"tracekit: 1 spans could not be delivered to {tls_receiver.http_traces_endpoint}: "
            "TLS verification failed (unable to get local issuer certificate; "
            f"it was checked against {tls_files.wrong_ca}); set OTEL_EXPORTER_OTLP_CERTIFICATE to the "
            "CA bundle (PEM) that signed the collector's certificate",
        ),
    ]


def test_wrong_ca_over_grpc_fails_with_a_clear_error(
    tls_receiver: OTLPReceiver,
    tls_files: TLSFiles,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", tls_receiver.grpc_endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", tls_files.wrong_ca)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "500")
    tracing = tracekit.configure(service_name="tls")

    tracing.provider.get_tracer("tests").start_span("one").end()
    tracing.force_flush(timeout=BOUND)

    assert tls_receiver.span_count == 0
    address = f"127.0.0.1:{tls_receiver.grpc_port}"
    [(level, message)] = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "tracekit"]
    assert level == logging.WARNING
    assert message.startswith(
        f"tracekit: 1 spans could not be delivered to {address}: TLS verification failed ("
    )
    assert "CERTIFICATE_VERIFY_FAILED" in message
    assert message.endswith(
        f"; it was checked against {tls_files.wrong_ca}); set OTEL_EXPORTER_OTLP_CERTIFICATE to the "
        "CA bundle (PEM) that signed the collector's certificate"
    )


@pytest.mark.parametrize(
    ("environment", "proxy"),
    [
        ({"HTTPS_PROXY": "http://proxy.example:3128"}, "http://proxy.example:3128"),
        ({"HTTPS_PROXY": "http://proxy.example:3128", "NO_PROXY": "collector.example"}, None),
        ({"HTTP_PROXY": "http://proxy.example:3128"}, None),  # for http:// endpoints only
        ({}, None),
    ],
)
def test_the_http_transport_follows_the_proxy_variables(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], proxy: str | None
) -> None:
    from tracekit.exporters._transport import HTTPTransport

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    transport = HTTPTransport(
        "https://collector.example:4318/v1/traces", headers={}, timeout=1.0, gzip_body=False
    )
    assert transport.proxy == proxy
    transport.close()


# --------------------------------------------------------------------------- suppression


@pytest.mark.parametrize("client", ["httpx", "requests"])
def test_the_exporters_own_http_requests_are_not_traced(receiver: OTLPReceiver, client: str) -> None:
    # The exporter sends over httpx: its requests must not be traced by the httpx integration.
    tracing = tracekit.configure(
        service_name="suppression",
        endpoint=receiver.http_endpoint,
        instrument=["httpx"] if client == "httpx" else ["requests", "urllib3"],
    )
    # The application's own request is traced (an empty export request, 0 spans)...
    body = {"content": b""} if client == "httpx" else {"data": b""}
    response = importlib.import_module(client).post(
        receiver.http_traces_endpoint,
        headers={"Content-Type": "application/x-protobuf"},
        timeout=BOUND,
        **body,
    )
    assert response.status_code == 200
    # ...the exporter's request that carries its span is not: a second flush finds nothing.
    assert tracing.force_flush(timeout=BOUND) is True
    assert tracing.force_flush(timeout=BOUND) is True

    [span] = receiver.wait_for_spans(1, timeout=BOUND)
    assert (span.name, span.kind, span.parent_span_id) == ("POST", SpanKind.CLIENT, None)
    assert span.attributes["http.request.method"] == "POST"
    assert span.attributes["http.response.status_code"] == 200
    assert [len(request.spans) for request in receiver.requests] == [0, 1]
    assert receiver.span_count == 1


# --------------------------------------------------------------------------- flush at exit

EXIT_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import tracekit

    tracing = tracekit.configure(service_name="exiting")
    tracer = tracing.provider.get_tracer("tests.exit")
    with tracer.start_as_current_span("job", attributes={"tracekit.job": "nightly"}):
        with tracer.start_as_current_span("step"):
            pass
    print(time.time(), flush=True)
    """
)


def run_exit_script(timeout: float = 30.0) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run EXIT_SCRIPT; return the result, the total wall time and the time spent exiting."""
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT], capture_output=True, text=True, timeout=timeout, check=False
    )
    ended = time.time()
    main_done = float(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else started
    return result, ended - started, ended - main_done


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_spans_are_flushed_at_normal_exit(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint_of(receiver, protocol))
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # only the exit flush can send them

    result, _, _ = run_exit_script()

    assert result.returncode == 0, result.stderr
    spans = receiver.wait_for_spans(2, timeout=BOUND)
    by_name = {span.name: span for span in spans}
    assert sorted(by_name) == ["job", "step"]
    assert by_name["step"].parent_span_id == by_name["job"].span_id
    assert by_name["step"].trace_id == by_name["job"].trace_id
    assert by_name["job"].attributes == {"tracekit.job": "nightly"}
    assert by_name["job"].resource["service.name"] == "exiting"
    assert by_name["job"].resource["process.pid"] != os.getpid()
    assert "could not export" not in result.stderr


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections (bound, never listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def unresponsive_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections (into the backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    ("protocol", "collector", "export_timeout_ms", "flush_limit_ms"),
    [
        # Refused connections: the exporter gives up within its own time limit.
        ("http/protobuf", "refusing_port", 2000, 30000),
        ("grpc", "refusing_port", 2000, 30000),
        # A collector that never answers: the exit flush limit (the smaller of the two) cuts it short.
        ("http/protobuf", "unresponsive_port", 2000, 1000),
        ("grpc", "unresponsive_port", 2000, 1000),
    ],
)
def test_exit_is_prompt_when_the_collector_is_down(
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    protocol: str,
    collector: str,
    export_timeout_ms: int,
    flush_limit_ms: int,
) -> None:
    port = request.getfixturevalue(collector)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", str(export_timeout_ms))
    monkeypatch.setenv("OTEL_BSP_EXPORT_TIMEOUT", str(flush_limit_ms))
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")
    limit = min(export_timeout_ms, flush_limit_ms) / 1000

    result, wall, exiting = run_exit_script()

    assert result.returncode == 0, result.stderr
    assert exiting < limit + 1.0, (exiting, result.stderr)
    assert wall < limit + 5.0, (wall, result.stderr)  # interpreter start-up and imports included
    if collector == "refusing_port":
        target = f"http://127.0.0.1:{port}/v1/traces" if protocol == "http/protobuf" else f"127.0.0.1:{port}"
        expected = (
            f"tracekit: 2 spans could not be delivered to {target}: connection refused; is the collector "
            "running there? To see spans locally instead, set OTEL_TRACES_EXPORTER=console"
        )
    else:
        expected = f"tracekit: spans still exporting after {limit:.1f} s at shutdown; giving up on them"
    assert expected in result.stderr.splitlines(), result.stderr


# --------------------------------------------------------------------------- the receiver itself


def post_raw(receiver: OTLPReceiver, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", receiver.http_port, timeout=BOUND)
    try:
        connection.request("POST", path, body=body, headers=dict(headers))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def handmade_request() -> Any:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    message = ExportTraceServiceRequest()
    resource_spans = message.resource_spans.add()
    resource_spans.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value="raw"))
    )
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "handmade"
    span = scope_spans.spans.add()
    span.trace_id = bytes(range(16))
    span.span_id = bytes(range(8))
    span.name = "unspecified kind"
    span.kind = Span.SPAN_KIND_UNSPECIFIED
    span.status.CopyFrom(Status(code=Status.STATUS_CODE_OK))
    span.attributes.append(KeyValue(key="blob", value=AnyValue(bytes_value=b"\x00\x01")))
    span.attributes.append(KeyValue(key="empty", value=AnyValue()))
    span.attributes.append(
        KeyValue(
            key="map",
            value=AnyValue(
                kvlist_value=KeyValueList(values=[KeyValue(key="n", value=AnyValue(int_value=7))])
            ),
        )
    )
    return message


@pytest.mark.parametrize("encoding", [None, "gzip", "deflate"])
def test_receiver_decodes_each_content_encoding(receiver: OTLPReceiver, encoding: str | None) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    data = handmade_request().SerializeToString()
    body = {None: data, "gzip": gzip.compress(data), "deflate": zlib.compress(data)}[encoding]
    headers = {"Content-Type": "application/x-protobuf"}
    if encoding is not None:
        headers["Content-Encoding"] = encoding

    status, answer = post_raw(receiver, "/v1/traces", body, headers)

    assert (status, answer) == (200, ExportTraceServiceResponse().SerializeToString())
    [span] = receiver.wait_for_spans(1, timeout=BOUND)
    assert span.name == "unspecified kind"
    assert span.kind is None
    assert (span.trace_id, span.span_id, span.parent_span_id) == (
        bytes(range(16)).hex(),
        bytes(range(8)).hex(),
        None,
    )
    assert (span.status_code, span.status_message) == (StatusCode.OK, "")
    assert span.attributes == {"blob": b"\x00\x01", "empty": None, "map": {"n": 7}}
    assert span.resource == {"service.name": "raw"}
    assert (span.scope_name, span.scope_version) == ("handmade", "")
    [request] = receiver.requests
    assert (request.content_encoding, request.body_size) == (encoding, len(body))


def test_receiver_refuses_what_is_not_an_otlp_protobuf_export() -> None:
    protobuf = {"Content-Type": "application/x-protobuf"}
    with OTLPReceiver(max_body_bytes=1024) as receiver:
        results = [
            post_raw(receiver, "/v1/metrics", b"", protobuf)[0],
            post_raw(receiver, "/v1/traces", b"{}", {"Content-Type": "application/json"})[0],
            post_raw(receiver, "/v1/traces", b"\xff\xff\xff", protobuf)[0],
            post_raw(
                receiver, "/v1/traces", gzip.compress(b"\0" * 4096), {**protobuf, "Content-Encoding": "gzip"}
            )[0],
            post_raw(receiver, "/v1/traces", b"x", {**protobuf, "Content-Encoding": "br"})[0],
            post_raw(receiver, "/v1/traces", b"\0" * 2048, protobuf)[0],
        ]
        errors = receiver.errors
        assert (receiver.span_count, receiver.requests) == (0, [])

    assert results == [404, 415, 400, 413, 415, 413]
    assert errors[0] == "http: POST /v1/metrics: only /v1/traces is served"
    assert errors[1] == "http: Content-Type 'application/json' (only application/x-protobuf)"
    assert errors[2].startswith("http: body is not an ExportTraceServiceRequest: ")
    assert errors[3:] == [
        "http: body is larger than 1024 bytes once decompressed",
        "http: Content-Encoding 'br' is not supported (gzip, deflate)",
        "http: body of 2048 bytes is too large",
    ]


def test_receiver_waits_are_bounded(receiver: OTLPReceiver) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"expected 1 spans within 0.2 s, received 0: \[\]; errors: \[\]"):
        receiver.wait_for_spans(1, timeout=0.2)
    assert time.monotonic() - started < 1.0


def test_receiver_is_loopback_only_and_stops_with_open_connections() -> None:
    import requests

    receiver = OTLPReceiver().start()
    assert receiver.http_endpoint == f"http://127.0.0.1:{receiver.http_port}"
    assert receiver.grpc_endpoint == f"http://127.0.0.1:{receiver.grpc_port}"
    with requests.Session() as session:  # keeps its connection open after the request
        response = session.post(
            receiver.http_traces_endpoint,
            data=b"",
            headers={"Content-Type": "application/x-protobuf"},
            timeout=BOUND,
        )
        assert response.status_code == 200

        started = time.monotonic()
        receiver.stop()
        assert time.monotonic() - started < 2.0

    assert [t.name for t in threading.enumerate() if t.name.startswith("otlp-receiver")] == []
    with pytest.raises(RuntimeError, match="not running"):
        _ = receiver.http_port
