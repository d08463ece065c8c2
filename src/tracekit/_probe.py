"""``tracekit doctor``'s probe: one span sent through the configured exporter, and what happened.

The exporter is the one the application would use, built from the same settings. Its first
outcome is reported exactly: the HTTP status the collector answered (401, 403, 404, ...)
with the collector's message, the gRPC status code and details, or what the network said
(connection refused, TLS verification failed, timeout, host not found). The exporter then
stops retrying, so a collector that is down is reported at once rather than after every
back-off; its counters are part of the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tracekit._inspect import captured_warnings
from tracekit._settings import Loaded
from tracekit._stats import ExportStats
from tracekit._version import __version__

if TYPE_CHECKING:
    from tracekit.exporters._otlp import Transport
    from tracekit.exporters._transport import Outcome

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
    #: The exporter's counters after the probe (see :func:`tracekit.stats`).
    stats: dict[str, Any] = field(default_factory=dict)

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


def _classify(outcome: Outcome, url: str, certificate: str | None, timeout: float, protocol: str) -> Probe:
    """The probe's report of the first outcome: what happened, in words, and what to do."""
    where = urlsplit(url).netloc or url
    cause, detail = outcome.cause, outcome.detail
    probe = Probe(outcome.delivered, url, protocol, cause, detail)
    if outcome.delivered:
        probe.detail = f"the collector answered {outcome.status}"
    elif cause == "TLS verification failed":
        probe.detail = f"the collector's certificate was rejected: {detail}"
        probe.fix = (
            f"it was checked against {certificate}; give the CA that signed the collector's certificate"
            if certificate
            else "it was checked against the system CAs; set OTEL_EXPORTER_OTLP_CERTIFICATE to the "
            "collector's CA bundle (PEM)"
        )
    elif cause == "TLS handshake failed":
        probe.fix = (
            "if the collector requires a client certificate, set OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE "
            "and OTEL_EXPORTER_OTLP_CLIENT_KEY; if it speaks plain text, use an http:// endpoint"
        )
    elif cause == "timeout":
        probe.detail = f"no answer from {where} within {timeout:g} s"
        probe.fix = (
            "check that the collector is up and reachable from here (network policies, firewalls); "
            "OTEL_EXPORTER_OTLP_TIMEOUT sets the limit, in milliseconds"
        )
    elif cause == "connection refused":
        probe.detail = f"nothing listens at {where}"
        probe.fix = "start the collector, or correct the host and port of the endpoint"
    elif cause == "host not found":
        probe.detail = f"{urlsplit(url).hostname} does not resolve: {detail}"
        probe.fix = "correct the host name; in Kubernetes, use <service>.<namespace> of the collector"
    elif isinstance(outcome.status, int):
        code = outcome.status
        probe.fix = _HTTP_FIXES.get(
            code, "the collector is failing; look at its own logs" if code >= 500 else ""
        )
    elif isinstance(outcome.status, str) and outcome.status in _GRPC_OUTCOMES:
        probe.outcome, probe.fix = _GRPC_OUTCOMES[outcome.status]
        probe.detail = f"gRPC status {outcome.status}: {detail}"
    return probe


class _FirstOutcome:
    """A transport that keeps the first outcome and then stops the exporter from retrying."""

    def __init__(self, transport: Transport, stop: Callable[[], None]) -> None:
        self.endpoint = transport.endpoint
        self._transport = transport
        self._stop = stop
        self.outcomes: list[Outcome] = []

    def send(self, body: bytes, timeout: float) -> Outcome:
        outcome = self._transport.send(body, timeout)
        if not self.outcomes:
            self.outcomes.append(outcome)
            self._stop()
        return outcome

    def close(self) -> None:
        self._transport.close()


def probe(loaded: Loaded) -> Probe:
    """Send one span to the configured OTLP endpoint and report the first outcome."""
    from opentelemetry.sdk.trace import TracerProvider

    from tracekit._sdk import _parsed_variables_hidden, make_resource
    from tracekit.exporters._otlp import OTLPSpanExporter, make_transport, traces_endpoint

    settings = loaded.settings
    url = traces_endpoint(settings, dict(loaded.sources))
    with _parsed_variables_hidden():
        span_source = TracerProvider(resource=make_resource(settings))
    span = span_source.get_tracer("tracekit.doctor", __version__).start_span("tracekit doctor probe")
    span.end()
    first: list[_FirstOutcome] = []

    def connect() -> Transport:
        first.append(_FirstOutcome(make_transport(settings, url), exporter.begin_shutdown))
        return first[0]

    exporter = OTLPSpanExporter(settings, url, transport=connect)
    exporter.problems.report = False
    started = time.monotonic()
    try:
        with captured_warnings():
            exporter.export([span])  # type: ignore[list-item]
            exporter.shutdown()
    except Exception as exc:
        result = Probe(False, url, settings.protocol, "exporter error", f"{type(exc).__name__}: {exc}")
    else:
        if first and first[0].outcomes:
            result = _classify(
                first[0].outcomes[0], url, settings.certificate, settings.timeout, settings.protocol
            )
        else:
            result = Probe(
                False, url, settings.protocol, "exporter error", exporter.counters.last_error or ""
            )
    result.seconds = round(time.monotonic() - started, 3)
    result.stats = asdict(ExportStats.total([(exporter.counters, 0)]))
    return result
