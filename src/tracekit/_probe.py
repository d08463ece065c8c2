"""``tracekit doctor``'s probe: one span sent through the configured exporter, and what happened.

The exporter is the one the application would use, built by the same factory from the same
settings. Its first outcome is reported exactly: the HTTP status the collector answered
(401, 403, 404, ...), or the cause under the exception the request raised (connection
refused, TLS verification failed, timeout, host not found); for gRPC, the status code and
details the exporter logged. The exporter is then shut down, which stops its retries, so a
collector that is down is reported at once rather than after every back-off.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from tracekit._inspect import captured_warnings
from tracekit._settings import Loaded
from tracekit._version import __version__
from tracekit.exporters._otlp import find_cause

__all__ = ["Probe", "probe"]


@dataclass
class Probe:
    """The outcome of sending one span to the configured exporter."""

    ok: bool
    endpoint: str
    protocol: str
    outcome: str  # sent, connection refused, TLS verification failed, HTTP 404, timeout, ...
    detail: str = ""
    fix: str = ""
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


_HTTP_FIXES = {
    400: "the collector could not decode the request; check that the endpoint speaks OTLP/HTTP",
    401: "the collector wants credentials: set OTEL_EXPORTER_OTLP_HEADERS "
    "(e.g. authorization=Bearer%20<token>)",
    403: "the credentials were refused: check the token or key in OTEL_EXPORTER_OTLP_HEADERS and its scope",
    404: "nothing serves this path: OTLP/HTTP receives traces at /v1/traces (OTEL_EXPORTER_OTLP_ENDPOINT "
    "is a base URL; OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as given)",
    405: "this URL does not accept POST: is it an OTLP/HTTP endpoint?",
    413: "the request was too large for the collector: lower OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    415: "the collector does not accept application/x-protobuf here: is it an OTLP/HTTP endpoint?",
    429: "the collector is throttling: it is overloaded or over its quota",
}

_GRPC_OUTCOMES = {
    "UNAUTHENTICATED": ("unauthenticated", _HTTP_FIXES[401]),
    "PERMISSION_DENIED": ("permission denied", _HTTP_FIXES[403]),
    "UNIMPLEMENTED": (
        "not an OTLP/gRPC endpoint",
        "the server does not serve the OTLP trace service: is this the collector's gRPC port (4317)?",
    ),
    "DEADLINE_EXCEEDED": ("timeout", ""),
    "RESOURCE_EXHAUSTED": ("throttled", _HTTP_FIXES[429]),
}


def _classify_exception(exc: BaseException, url: str, certificate: str | None, timeout: float) -> Probe:
    import requests

    where = urlsplit(url).netloc or url
    probe = Probe(False, url, "http/protobuf", "failed", f"{type(exc).__name__}: {exc}")
    verify = find_cause(exc, ssl.SSLCertVerificationError)
    if isinstance(verify, ssl.SSLCertVerificationError):
        probe.outcome = "TLS verification failed"
        probe.detail = f"the collector's certificate was rejected: {verify.verify_message}"
        probe.fix = (
            f"it was checked against {certificate}; give the CA that signed the collector's certificate"
            if certificate
            else "it was checked against the system CAs; set OTEL_EXPORTER_OTLP_CERTIFICATE to the "
            "collector's CA bundle (PEM)"
        )
    elif find_cause(exc, ssl.SSLError) is not None:
        probe.outcome = "TLS handshake failed"
        probe.detail = str(find_cause(exc, ssl.SSLError))
        probe.fix = (
            "if the collector requires a client certificate, set OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE "
            "and OTEL_EXPORTER_OTLP_CLIENT_KEY; if it speaks plain http, use an http:// endpoint"
        )
    elif isinstance(exc, requests.exceptions.Timeout) or find_cause(exc, TimeoutError) is not None:
        probe.outcome = "timeout"
        probe.detail = f"no answer from {where} within {timeout:g} s"
        probe.fix = (
            "check that the collector is up and reachable from here (network policies, firewalls); "
            "OTEL_EXPORTER_OTLP_TIMEOUT sets the limit, in milliseconds"
        )
    elif find_cause(exc, ConnectionRefusedError) is not None:
        probe.outcome = "connection refused"
        probe.detail = f"nothing listens at {where}"
        probe.fix = "start the collector, or correct the host and port of the endpoint"
    elif find_cause(exc, socket.gaierror) is not None:
        probe.outcome = "host not found"
        probe.detail = f"{urlsplit(url).hostname} does not resolve: {find_cause(exc, socket.gaierror)}"
        probe.fix = "correct the host name; in Kubernetes, use <service>.<namespace> of the collector"
    elif isinstance(exc, requests.exceptions.ConnectionError):
        probe.outcome = "connection failed"
    return probe


def _classify_response(response: Any, url: str) -> Probe:
    code = int(response.status_code)
    if 200 <= code < 300:
        return Probe(True, url, "http/protobuf", "sent", f"the collector answered {code} {response.reason}")
    body = (response.text or "").strip().splitlines()
    detail = f"{code} {response.reason}" + (f": {body[0][:200]}" if body else "")
    fix = _HTTP_FIXES.get(code, "the collector is failing; look at its own logs" if code >= 500 else "")
    return Probe(False, url, "http/protobuf", f"HTTP {code}", detail, fix)


def _classify_grpc(record: logging.LogRecord, url: str) -> Probe:
    args = record.args if isinstance(record.args, tuple) else ()
    code = next((arg for arg in args if type(arg).__name__ == "StatusCode"), None)
    name = getattr(code, "name", "UNKNOWN")
    details = str(args[-1]) if args else record.getMessage()
    where = urlsplit(url).netloc or url
    if name in _GRPC_OUTCOMES:
        outcome, fix = _GRPC_OUTCOMES[name]
        return Probe(False, url, "grpc", outcome, f"gRPC status {name}: {details}", fix)
    lowered = details.lower()
    if "certificate verify failed" in lowered or "certificate_verify_failed" in lowered:
        return Probe(
            False,
            url,
            "grpc",
            "TLS verification failed",
            details,
            "set OTEL_EXPORTER_OTLP_CERTIFICATE to the CA bundle (PEM) that signed the collector's "
            "certificate",
        )
    if "handshake" in lowered or "ssl" in lowered:
        fix = "check the endpoint's scheme: https:// (TLS) or http:// (plain)"
        return Probe(False, url, "grpc", "TLS handshake failed", details, fix)
    if "connection refused" in lowered:
        return Probe(
            False,
            url,
            "grpc",
            "connection refused",
            f"nothing listens at {where}",
            "start the collector, or correct the host and port of the endpoint",
        )
    if "dns" in lowered:
        return Probe(False, url, "grpc", "host not found", details, "correct the host name")
    return Probe(False, url, "grpc", f"gRPC {name}", details)


def probe(loaded: Loaded) -> Probe:
    """Send one span to the configured OTLP endpoint and report the first outcome."""
    from opentelemetry.sdk.trace import TracerProvider

    from tracekit._sdk import _parsed_variables_hidden, make_resource
    from tracekit.exporters._otlp import make_otlp_exporter, traces_endpoint

    settings = loaded.settings
    url = traces_endpoint(settings, dict(loaded.sources))
    outcomes: list[Probe] = []
    first = threading.Event()

    def observe(item: object) -> None:
        if not outcomes:
            if isinstance(item, BaseException):
                outcomes.append(_classify_exception(item, url, settings.certificate, settings.timeout))
            else:
                outcomes.append(_classify_response(item, url))
        first.set()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if settings.protocol == "grpc" and not outcomes and record.levelno >= logging.WARNING:
                outcomes.append(_classify_grpc(record, url))
                first.set()

    span_source = TracerProvider(resource=make_resource(settings))
    span = span_source.get_tracer("tracekit.doctor", __version__).start_span("tracekit doctor probe")
    span.end()
    exporter_logger = logging.getLogger("opentelemetry.exporter")
    handler = Collect(logging.WARNING)
    propagate = exporter_logger.propagate
    exporter_logger.addHandler(handler)
    exporter_logger.propagate = False
    started = time.monotonic()
    try:
        with captured_warnings(), _parsed_variables_hidden():
            exporter = make_otlp_exporter(settings, url, observe=observe)
        results: list[object] = []

        def send() -> None:
            try:
                results.append(exporter.export([span]))  # type: ignore[list-item]
            except Exception as exc:
                results.append(exc)
            first.set()

        sender = threading.Thread(target=send, name="tracekit-doctor-probe", daemon=True)
        sender.start()
        first.wait(settings.timeout + 2.0)
        elapsed = time.monotonic() - started
        if not outcomes and results and type(results[0]).__name__ == "SpanExportResult":
            success = getattr(results[0], "name", "") == "SUCCESS"
            outcomes.append(Probe(success, url, settings.protocol, "sent" if success else "failed", "", ""))
        if not outcomes:
            outcomes.append(
                Probe(
                    False,
                    url,
                    settings.protocol,
                    "timeout",
                    f"no outcome within {settings.timeout:g} s",
                    "check that the collector is up and reachable; OTEL_EXPORTER_OTLP_TIMEOUT sets the limit",
                )
            )
        with captured_warnings():
            exporter.shutdown()  # stops retrying after a first failure
            sender.join(2.0)
    except Exception as exc:
        elapsed = time.monotonic() - started
        outcomes = [Probe(False, url, settings.protocol, "exporter error", f"{type(exc).__name__}: {exc}")]
    finally:
        exporter_logger.removeHandler(handler)
        exporter_logger.propagate = propagate
    result = outcomes[0]
    result.protocol = settings.protocol
    result.seconds = round(elapsed, 3)
    return result
