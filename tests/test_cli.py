"""``tracekit doctor``, ``tracekit config`` and ``tracekit integrations``, run as real commands.

The probe is checked against the real OTLP receiver (healthy, over both protocols, TLS
with and without the right CA, a wrong path), a closed port, and small local HTTP servers
that answer 401 or 403, or never answer at all.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme

from launcher_support import environment, free_port, run, tracekit_command
from tracekit import _inspect, _registry
from tracekit._settings import declarations
from tracekit.testing import OTLPReceiver

TRACEKIT = tracekit_command()
SECRET = "s3cr3t-t0ken"


def tracekit(*args: str, **env: str) -> tuple[int, Any, str]:
    """Run ``tracekit ARGS --json`` with exactly the OTEL_* variables ``env``; (status, document, stderr)."""
    done = run([*TRACEKIT, *args, "--json"], environment(**env))
    try:
        document = json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"not JSON: {done.stdout!r} (stderr: {done.stderr})") from None
    return done.returncode, document, done.stderr


def doctor(**env: str) -> tuple[int, dict[str, Any]]:
    status, report, _ = tracekit("doctor", **env)
    return status, report


def problems(report: dict[str, Any]) -> dict[str, str]:
    return {problem["subject"]: problem["message"] for problem in report["problems"]}


# ---------------------------------------------------------------------------- doctor: the probe


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_doctor_healthy_sends_one_probe_span(receiver: OTLPReceiver, protocol: str) -> None:
    endpoint = receiver.http_endpoint if protocol == "http/protobuf" else receiver.grpc_endpoint
    status, report = doctor(
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_SERVICE_NAME="checkout",
    )
    assert report["problems"] == []
    assert report["healthy"] is True
    assert status == 0
    probe = report["probe"]
    assert (probe["ok"], probe["outcome"], probe["protocol"]) == (True, "sent", protocol)
    expected = receiver.http_traces_endpoint if protocol == "http/protobuf" else receiver.grpc_endpoint
    assert probe["endpoint"] == expected
    stats = probe["stats"]
    assert (stats["exported"], stats["failed"], stats["requests"], stats["retries"]) == (1, 0, 1, 0)
    assert stats["bytes_sent"] == receiver.requests[0].body_size
    assert stats["last_error"] is None
    [span] = receiver.wait_for_spans(1)
    assert (span.name, span.scope_name) == ("tracekit doctor probe", "tracekit.doctor")
    assert span.resource["service.name"] == "checkout"
    assert span.protocol == ("http" if protocol == "http/protobuf" else "grpc")


def test_doctor_text_report(receiver: OTLPReceiver) -> None:
    env = environment(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_endpoint, OTEL_SERVICE_NAME="checkout")
    done = run([*TRACEKIT, "doctor"], env)
    assert done.returncode == 0, done.stdout
    text = done.stdout
    assert "service_name  checkout  [OTEL_SERVICE_NAME]" in text
    assert f"endpoint      {receiver.http_endpoint}  [OTEL_EXPORTER_OTLP_ENDPOINT]" in text
    assert "Problems (0)\n  none" in text
    assert "  threading" in text
    assert "would be patched" in text
    assert f"[ok] one span to {receiver.http_traces_endpoint} over http/protobuf: sent" in text
    size = receiver.requests[0].body_size
    assert (
        f"         counters: exported 1, failed 0, rejected 0, requests 1, retries 0, bytes sent {size} "
        "(tracekit.stats() in the application)" in text
    )
    assert text.rstrip().endswith("Healthy.")


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_doctor_connection_refused(protocol: str) -> None:
    port = free_port()
    status, report = doctor(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}", OTEL_EXPORTER_OTLP_PROTOCOL=protocol
    )
    assert status == 1
    assert report["healthy"] is False
    probe = report["probe"]
    assert probe["ok"] is False
    assert probe["outcome"] == "connection refused"
    assert probe["detail"] == f"nothing listens at 127.0.0.1:{port}"
    suffix = "/v1/traces" if protocol == "http/protobuf" else ""
    assert probe["endpoint"] == f"http://127.0.0.1:{port}{suffix}"
    assert probe["seconds"] < 5  # reported at the first attempt, not after the exporter's retries


def test_doctor_http_404_from_a_wrong_path(receiver: OTLPReceiver) -> None:
    status, report = doctor(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.http_endpoint + "/v1/trace")
    assert status == 1
    probe = report["probe"]
    assert probe["outcome"] == "HTTP 404"
    assert probe["endpoint"] == receiver.http_endpoint + "/v1/trace"
    assert "/v1/traces" in probe["fix"]
    assert receiver.span_count == 0


class _Answer(BaseHTTPRequestHandler):
    status = 401

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"denied"
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def answering() -> Iterator[Any]:
    """Start a local HTTP server answering every POST with a given status; yields a starter."""
    servers: list[ThreadingHTTPServer] = []

    def start(status: int) -> str:
        handler = type("Handler", (_Answer,), {"status": status})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("code", "words"), [(401, "credentials"), (403, "refused")])
def test_doctor_http_401_and_403(answering: Any, code: int, words: str) -> None:
    endpoint = answering(code)
    status, report = doctor(
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_HEADERS=f"x-api-key={SECRET}"
    )
    assert status == 1
    probe = report["probe"]
    assert probe["outcome"] == f"HTTP {code}"
    assert probe["detail"].startswith(f"{code} ")
    assert probe["detail"].endswith(": denied")
    assert words in probe["fix"]
    assert "OTEL_EXPORTER_OTLP_HEADERS" in probe["fix"]
    assert SECRET not in json.dumps(report)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_doctor_timeout(silent_port: int) -> None:
    status, report = doctor(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{silent_port}", OTEL_EXPORTER_OTLP_TIMEOUT="500"
    )
    assert status == 1
    probe = report["probe"]
    assert probe["outcome"] == "timeout"
    assert probe["detail"] == f"no answer from 127.0.0.1:{silent_port} within 0.5 s"
    assert "OTEL_EXPORTER_OTLP_TIMEOUT" in probe["fix"]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    files = {"ca": directory / "ca.pem", "cert": directory / "server.pem", "key": directory / "server.key"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    server.cert_chain_pems[0].write_to_path(str(files["cert"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    return files


def test_doctor_tls_verification_failed_then_fixed_with_the_ca(tls_files: dict[str, Path]) -> None:
    with OTLPReceiver(certfile=tls_files["cert"], keyfile=tls_files["key"]) as receiver:
        status, report = doctor(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_endpoint)
        assert status == 1
        probe = report["probe"]
        assert probe["outcome"] == "TLS verification failed"
        assert probe["detail"].startswith("the collector's certificate was rejected: ")
        assert "OTEL_EXPORTER_OTLP_CERTIFICATE" in probe["fix"]

        status, report = doctor(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_endpoint,
            OTEL_EXPORTER_OTLP_CERTIFICATE=str(tls_files["ca"]),
        )
        assert (status, report["probe"]["outcome"]) == (0, "sent")
        receiver.wait_for_spans(1)


def test_doctor_no_probe_without_an_otlp_exporter() -> None:
    status, report = doctor(OTEL_TRACES_EXPORTER="none")
    assert status == 1
    assert report["probe"] is None
    assert problems(report) == {
        "OTEL_TRACES_EXPORTER": "no exporter is configured: spans are made but never leave the process"
    }


# ---------------------------------------------------------------------------- doctor: the checks


def test_doctor_grpc_port_with_http_protocol() -> None:
    _, report = doctor(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4317", OTEL_EXPORTER_OTLP_TIMEOUT="500")
    [problem] = [p for p in report["problems"] if p["subject"] == "OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert problem["message"] == (
        "http://127.0.0.1:4317/v1/traces: port 4317 is where collectors serve OTLP/gRPC, "
        "but the protocol is http/protobuf"
    )
    assert problem["fix"] == "use port 4318 (OTLP/HTTP), or set OTEL_EXPORTER_OTLP_PROTOCOL=grpc"


def test_doctor_http_port_with_grpc_protocol_and_a_path() -> None:
    _, report = doctor(
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318/v1/traces",
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_EXPORTER_OTLP_TIMEOUT="500",
    )
    messages = [p["message"] for p in report["problems"] if p["subject"] == "OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert messages == [
        "http://127.0.0.1:4318/v1/traces: port 4318 is where collectors serve OTLP/HTTP, "
        "but the protocol is grpc",
        "http://127.0.0.1:4318/v1/traces: gRPC has no URL path; /v1/traces is ignored",
    ]


def test_doctor_base_endpoint_given_the_full_path(receiver: OTLPReceiver) -> None:
    status, report = doctor(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_traces_endpoint)
    assert status == 1
    [problem] = report["problems"]
    assert problem["message"].startswith(f"spans would be sent to {receiver.http_traces_endpoint}/v1/traces")
    assert "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" in problem["fix"]
    assert report["probe"]["outcome"] == "HTTP 404"


def test_doctor_invalid_and_unknown_values() -> None:
    status, report = doctor(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}",
        OTEL_TRACES_SAMPLER="sometimes",
        OTEL_PROPAGATORS="tracecontext,baggagee",
        OTEL_SERVICE_NAM="checkout",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="httpx,nosuchlib",
        OTEL_METRICS_EXPORTER="none",
    )
    assert status == 1
    found = problems(report)
    assert found["OTEL_TRACES_SAMPLER"].startswith("OTEL_TRACES_SAMPLER='sometimes' is not valid")
    assert found["OTEL_PROPAGATORS"].startswith("OTEL_PROPAGATORS='tracecontext,baggagee'")
    assert found["OTEL_SERVICE_NAM"] == "OTEL_SERVICE_NAM is not a variable tracekit reads"
    assert "'nosuchlib'" in found["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"]
    fixes = {p["subject"]: p["fix"] for p in report["problems"]}
    assert fixes["OTEL_SERVICE_NAM"] == "did you mean OTEL_SERVICE_NAME?"
    assert fixes["OTEL_TRACES_SAMPLER"].startswith("set OTEL_TRACES_SAMPLER to one of always_on")
    notes = {note["subject"]: note["message"] for note in report["notes"]}
    assert (
        notes["OTEL_METRICS_EXPORTER"]
        == "OTEL_METRICS_EXPORTER is for another signal; tracekit exports traces only"
    )
    assert notes["OTEL_SERVICE_NAME"].startswith("no service name")
    [httpx] = [row for row in report["integrations"] if row["name"] == "httpx"]
    assert httpx["status"] == "disabled by env"


def test_doctor_missing_and_unusable_ca_files(tmp_path: Path) -> None:
    _, report = doctor(
        OTEL_EXPORTER_OTLP_CERTIFICATE=str(tmp_path / "missing.pem"), OTEL_TRACES_EXPORTER="none"
    )
    assert problems(report)["OTEL_EXPORTER_OTLP_CERTIFICATE"].startswith(
        f"OTEL_EXPORTER_OTLP_CERTIFICATE='{tmp_path / 'missing.pem'}' is not valid (no such file"
    )
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    _, report = doctor(OTEL_EXPORTER_OTLP_CERTIFICATE=str(garbage), OTEL_TRACES_EXPORTER="none")
    assert problems(report)["OTEL_EXPORTER_OTLP_CERTIFICATE"].startswith(f"{garbage} is not a PEM CA bundle")


@pytest.mark.parametrize(
    ("propagators", "message"),
    [
        ("none", "propagation is off"),
        ("b3", "propagators b3 leave out W3C traceparent"),
        ("jaeger,baggage", "propagators jaeger,baggage leave out W3C traceparent"),
    ],
)
def test_doctor_propagators_that_do_not_match_common_peers(propagators: str, message: str) -> None:
    _, report = doctor(OTEL_PROPAGATORS=propagators, OTEL_TRACES_EXPORTER="none")
    assert problems(report)["OTEL_PROPAGATORS"].startswith(message)


def test_doctor_disabled() -> None:
    status, report = doctor(OTEL_SDK_DISABLED="true")
    assert status == 1
    assert problems(report) == {"OTEL_SDK_DISABLED": "tracing is disabled: nothing is recorded or sent"}
    assert report["probe"] is None


# ---------------------------------------------------------------------------- config


def test_config_lists_every_setting_with_its_source_and_masks_secrets() -> None:
    status, rows, stderr = tracekit(
        "config",
        OTEL_SERVICE_NAME="checkout",
        OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer%20{SECRET},x-team=payments",
        OTEL_EXPORTER_OTLP_TRACES_TIMEOUT="2500",
        OTEL_TRACES_SAMPLER_ARG="2",
    )
    assert status == 0
    assert [row["name"] for row in rows] == [decl.name for decl in declarations()]
    by_name = {row["name"]: row for row in rows}
    assert by_name["service_name"] | {"doc": ""} == {
        "name": "service_name",
        "env": ["OTEL_SERVICE_NAME"],
        "value": "checkout",
        "display": "checkout",
        "source": "environment",
        "variable": "OTEL_SERVICE_NAME",
        "default": "unknown_service:<executable>",
        "doc": "",
    }
    assert by_name["headers"]["value"] == {"authorization": "<hidden>", "x-team": "<hidden>"}
    assert by_name["headers"]["display"] == "authorization=<hidden>,x-team=<hidden>"
    assert (by_name["timeout"]["value"], by_name["timeout"]["variable"]) == (
        2500,
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    )
    assert (by_name["sample_ratio"]["value"], by_name["sample_ratio"]["source"]) == (1.0, "default")
    assert "OTEL_TRACES_SAMPLER_ARG='2' is not valid" in stderr
    assert SECRET not in json.dumps(rows) + stderr


def test_config_text() -> None:
    done = run([*TRACEKIT, "config"], environment(OTEL_EXPORTER_OTLP_HEADERS=f"api-key={SECRET}"))
    assert done.returncode == 0
    lines = {line.split()[0]: line.split() for line in done.stdout.splitlines()}
    assert set(lines) == {decl.name for decl in declarations()}
    assert lines["headers"][1:] == ["api-key=<hidden>", "OTEL_EXPORTER_OTLP_HEADERS"]
    assert lines["sampler"][1:] == ["parentbased_traceidratio", "default"]
    assert SECRET not in done.stdout


# ---------------------------------------------------------------------------- integrations


def test_integrations_lists_the_registry() -> None:
    status, rows, _ = tracekit("integrations", OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="requests")
    assert status == 0
    assert [row["name"] for row in rows] == [integration.name for integration in _registry.INTEGRATIONS]
    by_name = {row["name"]: row for row in rows}
    import httpx

    assert by_name["httpx"] == {
        "name": "httpx",
        "library": "httpx",
        "version": httpx.__version__,
        "min_version": _registry.BY_NAME["httpx"].min_version,
        "status": "available",
        "detail": "patched when the application imports it",
    }
    assert by_name["requests"]["status"] == "disabled by env"
    assert by_name["requests"]["detail"] == "listed in OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
    assert by_name["threading"]["library"] == "stdlib"


def test_integrations_under_the_launcher_shows_what_is_patched() -> None:
    done = run(
        [*TRACEKIT, "run", *TRACEKIT, "integrations", "--json"], environment(OTEL_TRACES_EXPORTER="none")
    )
    assert done.returncode == 0, done.stderr
    by_name = {row["name"]: row for row in json.loads(done.stdout)}
    assert by_name["threading"]["status"] == "patched"
    assert by_name["sqlite3"]["status"] == "available"


def test_integration_status_not_installed_and_too_old(monkeypatch: pytest.MonkeyPatch) -> None:
    versions = {"httpx": None, "requests": "1.0"}

    def installed(integration: _registry.Integration, by_module: dict[str, list[str]]) -> str | None:
        return versions.get(integration.name, "99.0")

    monkeypatch.setattr(_inspect, "_installed_version", installed)
    rows = {row.name: row for row in _inspect.integration_rows()}
    assert (rows["httpx"].status, rows["httpx"].installed) == ("not installed", False)
    assert rows["requests"].status == "too old"
    assert rows["requests"].detail == f"{_registry.BY_NAME['requests'].min_version} or later is supported"
    assert rows["urllib3"].status == "available"


def test_version_and_help() -> None:
    done = run([*TRACEKIT, "--version"], environment())
    from tracekit import __version__

    assert done.stdout.strip() == f"tracekit {__version__}"
    done = run([*TRACEKIT], environment())
    assert done.returncode == 2
    assert "doctor" in done.stderr
    assert "integrations" in done.stderr
