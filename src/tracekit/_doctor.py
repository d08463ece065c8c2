"""``tracekit doctor``: is tracing set up so that traces arrive, whole?

:func:`diagnose` reads the effective settings (or those of this process, when it was
configured), checks them for problems that would stop traces from arriving or from joining
up, lists the installed libraries tracekit would patch, and sends one probe span to the
configured exporter, reporting its exact outcome.
"""

from __future__ import annotations

import difflib
import logging
import os
import ssl
import sys
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tracekit import _registry, _uwsgi
from tracekit._inspect import ConfigRow, IntegrationRow, config_rows_of, effective, integration_rows_of
from tracekit._probe import Probe, probe
from tracekit._settings import Declaration, Loaded, declarations
from tracekit._version import __version__

__all__ = ["Finding", "Report", "diagnose"]

_HTTP_PORT = 4318
_GRPC_PORT = 4317

#: OpenTelemetry variables tracekit does not read on purpose (other signals): notes, not problems.
_OTHER_SIGNALS = (
    "OTEL_METRIC",
    "OTEL_LOGS",
    "OTEL_BLRP_",
    "OTEL_EXPORTER_OTLP_METRICS_",
    "OTEL_EXPORTER_OTLP_LOGS_",
)


@dataclass(frozen=True)
class Finding:
    """Something doctor found: a ``problem`` (makes the result unhealthy) or a ``note``."""

    level: str
    subject: str
    message: str
    fix: str = ""


def _declared_variables() -> dict[str, Declaration]:
    return {var: decl for decl in declarations() for var in decl.env}


def _from_warnings(records: list[logging.LogRecord]) -> Iterator[Finding]:
    variables = _declared_variables()
    for record in records:
        message = record.getMessage().removeprefix("tracekit: ")
        first = record.args[0] if isinstance(record.args, tuple) and record.args else None
        decl = variables.get(first) if isinstance(first, str) else None
        if decl is not None and isinstance(first, str):
            fix = f"set {first} to {decl.kind.accepts}, or unset it"
            yield Finding("problem", first, message, fix)
        else:
            subject = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS" if "integration" in message else "settings"
            names = ", ".join(integration.name for integration in _registry.INTEGRATIONS)
            yield Finding("problem", subject, message, f"use integration names: {names}")


def _unknown_variables(environ: Mapping[str, str]) -> Iterator[Finding]:
    variables = _declared_variables()
    for name in sorted(environ):
        if not name.startswith(("OTEL_", "TRACEKIT_")) or name in variables:
            continue
        if name.startswith("TRACEKIT_TEST_"):
            continue
        close = difflib.get_close_matches(name, list(variables), n=1, cutoff=0.85)
        if name.startswith(_OTHER_SIGNALS):
            yield Finding("note", name, f"{name} is for another signal; tracekit exports traces only")
        elif close:
            yield Finding(
                "problem",
                name,
                f"{name} is not a variable tracekit reads",
                f"did you mean {close[0]}?",
            )
        else:
            yield Finding("note", name, f"{name} is not read by tracekit")


def _endpoint_findings(loaded: Loaded, environ: Mapping[str, str]) -> Iterator[Finding]:
    from tracekit.exporters._otlp import traces_endpoint

    settings, sources = loaded.settings, dict(loaded.sources)
    url = traces_endpoint(settings, sources)
    parts = urlsplit(url if "://" in url else "//" + url)
    port = parts.port
    uses_traces = url == settings.traces_endpoint
    source = sources.get("traces_endpoint" if uses_traces else "endpoint", "default")
    subject = source if source not in ("default", "keyword") else ("endpoint" if source == "keyword" else url)
    protocol_source = sources.get("protocol", "default")
    protocol_var = protocol_source if protocol_source.startswith("OTEL_") else "OTEL_EXPORTER_OTLP_PROTOCOL"
    if settings.protocol == "http/protobuf" and port == _GRPC_PORT:
        yield Finding(
            "problem",
            subject,
            f"{url}: port {_GRPC_PORT} is where collectors serve OTLP/gRPC, "
            "but the protocol is http/protobuf",
            f"use port {_HTTP_PORT} (OTLP/HTTP), or set {protocol_var}=grpc",
        )
    if settings.protocol == "grpc" and port == _HTTP_PORT:
        yield Finding(
            "problem",
            subject,
            f"{url}: port {_HTTP_PORT} is where collectors serve OTLP/HTTP, but the protocol is grpc",
            f"use port {_GRPC_PORT} (OTLP/gRPC), or set {protocol_var}=http/protobuf",
        )
    if settings.protocol == "grpc" and parts.path not in ("", "/"):
        yield Finding(
            "problem",
            subject,
            f"{url}: gRPC has no URL path; {parts.path} is ignored",
            "give only scheme, host and port, such as http://collector:4317",
        )
    if settings.protocol == "http/protobuf":
        if not uses_traces and parts.path.rstrip("/").endswith("/v1/traces/v1/traces"):
            yield Finding(
                "problem",
                subject,
                f"spans would be sent to {url}: OTEL_EXPORTER_OTLP_ENDPOINT is a base URL and "
                "/v1/traces is appended to it",
                "remove /v1/traces from OTEL_EXPORTER_OTLP_ENDPOINT, or give the full URL in "
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT instead",
            )
        if uses_traces and parts.path in ("", "/"):
            yield Finding(
                "problem",
                subject,
                f"{url}: the traces endpoint is used exactly as given, so spans are posted to "
                f"{parts.path or '/'}, where a collector answers 404",
                f"append /v1/traces ({url.rstrip('/')}/v1/traces), or set OTEL_EXPORTER_OTLP_ENDPOINT "
                "to the base URL instead",
            )
    if source == "default":
        yield Finding("note", "endpoint", f"no endpoint is configured: spans go to the default, {url}")
    host = (parts.hostname or "").lower()
    if host in ("localhost", "127.0.0.1", "::1") and environ.get("KUBERNETES_SERVICE_HOST"):
        yield Finding(
            "note",
            subject,
            f"{url}: in a Kubernetes pod, {host} is the pod itself; that is right only with a collector "
            "sidecar",
            "point at the collector's Service (http://otel-collector.observability:4318) or at the node's "
            "agent (the status.hostIP field)",
        )
    if parts.scheme == "http" and settings.certificate:
        yield Finding(
            "note",
            "certificate",
            f"{url} is plain http: the CA bundle {settings.certificate} is not used",
            "use https:// to verify the collector with it",
        )


def _tls_findings(loaded: Loaded) -> Iterator[Finding]:
    settings, sources = loaded.settings, loaded.sources

    def var(name: str) -> str:
        source = sources.get(name, "default")
        return source if source.startswith("OTEL_") else name

    for name in ("certificate", "client_key", "client_certificate"):
        path = getattr(settings, name)
        if path is None:
            continue
        try:
            with open(path, "rb") as file:
                file.read(1)
        except OSError as exc:
            yield Finding(
                "problem",
                var(name),
                f"{path} cannot be read: {exc.strerror or exc}",
                "make the file readable by the application's user (check the volume's permissions)",
            )
            return
    if settings.certificate:
        try:
            ssl.create_default_context(cafile=settings.certificate)
        except (ssl.SSLError, ValueError) as exc:
            yield Finding(
                "problem",
                var("certificate"),
                f"{settings.certificate} is not a PEM CA bundle ({exc})",
                "give the PEM file of the CA that signed the collector's certificate",
            )
    if bool(settings.client_key) != bool(settings.client_certificate):
        missing = "client_certificate" if settings.client_key else "client_key"
        yield Finding(
            "problem",
            var(missing),
            "mutual TLS needs both a client certificate and its key; only one is set",
            "set OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY together",
        )
    elif settings.client_key and settings.client_certificate:
        try:
            ssl.create_default_context().load_cert_chain(settings.client_certificate, settings.client_key)
        except (ssl.SSLError, ValueError) as exc:
            yield Finding(
                "problem",
                var("client_certificate"),
                f"the client certificate and key do not load together ({exc})",
                "give the PEM certificate chain and the PEM private key that belongs to it",
            )


def _propagation_findings(loaded: Loaded) -> Iterator[Finding]:
    names = [name for name in loaded.settings.propagators if name != "none"]
    source = loaded.sources.get("propagators", "default")
    subject = source if source.startswith("OTEL_") else "propagators"
    if not names:
        yield Finding(
            "problem",
            subject,
            "propagation is off: incoming trace headers are ignored and none are sent, so every "
            "service starts a new trace",
            "OTEL_PROPAGATORS=tracecontext,baggage",
        )
        return
    if "tracecontext" not in names:
        yield Finding(
            "problem",
            subject,
            f"propagators {','.join(names)} leave out W3C traceparent, which OpenTelemetry SDKs, "
            "cloud load balancers and most vendor agents send: calls from them start new traces",
            f"OTEL_PROPAGATORS=tracecontext,baggage,{','.join(names)}",
        )
    if "b3" in names and "b3multi" not in names:
        yield Finding(
            "note",
            subject,
            "b3 sends the single `b3` header; Zipkin-era services and Envoy/Istio sidecars commonly "
            "expect the X-B3-* headers",
            "add b3multi if those peers lose the trace",
        )
    if "baggage" not in names:
        yield Finding("note", subject, "baggage is not propagated (W3C baggage header)")


def _server_findings() -> Iterator[Finding]:
    """What the server this process runs in does to export (run under uWSGI, e.g. from its ``--pyrun``)."""
    for problem, fix in _uwsgi.problems():
        yield Finding("problem", "uWSGI", problem, fix)


def _pipeline_findings(loaded: Loaded) -> Iterator[Finding]:
    settings, sources = loaded.settings, loaded.sources
    if settings.disabled:
        yield Finding(
            "problem",
            sources.get("disabled", "disabled"),
            "tracing is disabled: nothing is recorded or sent",
            "unset OTEL_SDK_DISABLED (or set it to false)",
        )
        return
    names = [item for item in settings.exporters if isinstance(item, str) and item != "none"]
    if not names and not any(not isinstance(item, str) for item in settings.exporters):
        yield Finding(
            "problem",
            sources.get("exporters", "exporters"),
            "no exporter is configured: spans are made but never leave the process",
            "OTEL_TRACES_EXPORTER=otlp",
        )
    elif "otlp" not in names:
        yield Finding("note", "OTEL_TRACES_EXPORTER", "spans are printed on stderr, not sent to a collector")
    if not settings.service_name and "service.name" not in settings.resource_attributes:
        yield Finding(
            "note",
            "OTEL_SERVICE_NAME",
            "no service name: spans say unknown_service, and backends group them under it",
            "set OTEL_SERVICE_NAME",
        )
    ratio_applies = settings.sampler.endswith("traceidratio")
    if settings.sampler.endswith("always_off") or (ratio_applies and settings.sample_ratio == 0):
        yield Finding(
            "problem",
            sources.get("sampler", "sampler"),
            f"sampler {settings.sampler} (ratio {settings.sample_ratio:g}) keeps no new trace",
            "OTEL_TRACES_SAMPLER=parentbased_traceidratio with OTEL_TRACES_SAMPLER_ARG between 0 and 1",
        )
    elif ratio_applies and settings.sample_ratio < 1:
        yield Finding(
            "note",
            sources.get("sample_ratio", "sample_ratio"),
            f"{settings.sample_ratio:.0%} of new traces are kept"
            + (" (a caller's decision is followed)" if settings.sampler.startswith("parentbased") else ""),
        )
    if settings.timeout < 1:
        yield Finding(
            "note",
            sources.get("timeout", "timeout"),
            f"the export time limit is {settings.timeout * 1000:g} ms; a collector that is far away or "
            "busy will time out",
        )


@dataclass
class Report:
    """Everything ``tracekit doctor`` found."""

    configuration: list[ConfigRow]
    findings: list[Finding]
    integrations: list[IntegrationRow]
    probe: Probe | None
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def problems(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.level == "problem"]

    @property
    def healthy(self) -> bool:
        return not self.problems and (self.probe is None or self.probe.ok)

    def as_json(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "versions": self.versions,
            "configuration": [row.as_json() for row in self.configuration],
            "problems": [asdict(finding) for finding in self.problems],
            "notes": [asdict(finding) for finding in self.findings if finding.level != "problem"],
            "integrations": [row.as_json() for row in self.integrations if row.installed],
            "probe": None if self.probe is None else self.probe.as_json(),
        }

    def render(self) -> str:
        lines = [
            "tracekit doctor: " + ", ".join(f"{name} {version}" for name, version in self.versions.items()),
            "",
            "Configuration (settings not at their default; `tracekit config` lists all of them)",
        ]
        shown = [row for row in self.configuration if row.source != "default" or row.name in _ALWAYS_SHOWN]
        name_width = max(len(row.name) for row in shown)
        for row in shown:
            lines.append(f"  {row.name:<{name_width}}  {row.display}  [{row.variable or row.source}]")
        lines += ["", f"Problems ({len(self.problems)})"]
        lines += [_render_finding(finding) for finding in self.problems] or ["  none"]
        notes = [finding for finding in self.findings if finding.level != "problem"]
        if notes:
            lines += ["", "Notes"] + [_render_finding(finding) for finding in notes]
        installed = [row for row in self.integrations if row.installed]
        lines += ["", "Installed libraries tracekit integrates with"]
        width = max((len(row.name) for row in installed), default=0)
        for library in installed:
            verdict = {
                "available": "would be patched",
                "patched": "patched",
            }.get(library.status, f"not patched: {library.status}")
            detail = f" ({library.detail})" if library.detail and library.status != "available" else ""
            lines.append(f"  {library.name:<{width}}  {library.library} {library.version}: {verdict}{detail}")
        lines += ["", "Probe"]
        if self.probe is None:
            lines.append("  not sent (no OTLP exporter is configured)")
        else:
            p = self.probe
            mark = "ok" if p.ok else "FAILED"
            lines.append(f"  [{mark}] one span to {p.endpoint} over {p.protocol}: {p.outcome}")
            if p.detail:
                lines.append(f"         {p.detail}")
            if p.fix:
                lines.append(f"         fix: {p.fix}")
            if p.stats:
                counts = ", ".join(
                    f"{name.replace('_', ' ')} {p.stats[name]}"
                    for name in ("exported", "failed", "rejected", "requests", "retries", "bytes_sent")
                )
                lines.append(f"         counters: {counts} (tracekit.stats() in the application)")
        lines += ["", "Healthy." if self.healthy else "Not healthy: see the problems and the probe above."]
        return "\n".join(lines)


_ALWAYS_SHOWN = ("service_name", "exporters", "endpoint", "protocol", "sampler", "propagators")


def _render_finding(finding: Finding) -> str:
    mark = "[problem]" if finding.level == "problem" else "[note]"
    text = f"  {mark} {finding.subject}: {finding.message}"
    if finding.fix:
        text += f"\n      fix: {finding.fix}"
    return text


def diagnose(environ: Mapping[str, str] | None = None, *, send_probe: bool = True) -> Report:
    """Check the effective configuration and (unless told not to) send one probe span."""
    import opentelemetry.sdk.version

    environ = os.environ if environ is None else environ
    loaded, records = effective()
    findings = [
        *_pipeline_findings(loaded),
        *_from_warnings(records),
        *_unknown_variables(environ),
        *_endpoint_findings(loaded, environ),
        *_tls_findings(loaded),
        *_propagation_findings(loaded),
        *_server_findings(),
    ]
    wants_otlp = not loaded.settings.disabled and "otlp" in loaded.settings.exporters
    return Report(
        configuration=config_rows_of(loaded),
        findings=findings,
        integrations=integration_rows_of(loaded),
        probe=probe(loaded) if wants_otlp and send_probe else None,
        versions={
            "tracekit": __version__,
            "opentelemetry-sdk": opentelemetry.sdk.version.__version__,
            "python": "{}.{}.{}".format(*sys.version_info[:3]),
        },
    )
