"""The OTLP exporter for the configured protocol, built from explicit settings.

Only the module of the chosen protocol is imported: the gRPC stack costs a noticeable
part of start-up and is left alone unless ``grpc`` is asked for.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.sdk.trace.export import SpanExporter

from tracekit._logging import warn_once
from tracekit._settings import Settings

__all__ = ["make_otlp_exporter", "traces_endpoint"]

_DEFAULT_HTTP = "http://localhost:4318"
_DEFAULT_GRPC = "http://localhost:4317"


def traces_endpoint(settings: Settings, sources: dict[str, str] | None = None) -> str:
    """The URL spans are sent to, by the specification's rules.

    A signal-specific endpoint is used as given; a base endpoint gets ``/v1/traces``
    appended for http/protobuf. A keyword ``endpoint=`` wins over both variables.
    """
    keyword_base = sources is not None and sources.get("endpoint") == "keyword"
    keyword_traces = sources is not None and sources.get("traces_endpoint") == "keyword"
    if settings.traces_endpoint and (keyword_traces or not keyword_base):
        return settings.traces_endpoint
    if settings.protocol == "grpc":
        return settings.endpoint or _DEFAULT_GRPC
    base = settings.endpoint or _DEFAULT_HTTP
    if "://" not in base:
        base = ("http://" if settings.insecure else "https://") + base
    return base.rstrip("/") + "/v1/traces"


def make_otlp_exporter(
    settings: Settings, endpoint: str, *, observe: Callable[[object], None] | None = None
) -> SpanExporter:
    """An OTLP span exporter for ``settings.protocol`` sending to ``endpoint``.

    ``observe`` (http/protobuf only) is called with each HTTP response the exporter gets, or
    the exception its request raised: ``tracekit doctor`` reports the exact outcome with it.
    """
    if settings.protocol == "grpc":
        return _grpc_exporter(settings, endpoint)
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTPExporter

    return HTTPExporter(
        endpoint=endpoint,
        certificate_file=settings.certificate,
        client_key_file=settings.client_key,
        client_certificate_file=settings.client_certificate,
        headers=dict(settings.headers),
        timeout=settings.timeout,
        compression=Compression.Gzip if settings.compression == "gzip" else Compression.NoCompression,
        session=_http_session(settings.certificate, observe),
    )


def _http_session(certificate: str | None, observe: Callable[[object], None] | None = None) -> Any:
    """The requests session of the HTTP exporter, with two fixes.

    * The configured CA bundle is kept: requests merges ``REQUESTS_CA_BUNDLE`` /
      ``CURL_CA_BUNDLE`` into every request as if given per call, which wins over the
      session's ``verify``, so on machines that set them ``OTEL_EXPORTER_OTLP_CERTIFICATE``
      would be silently ignored.
    * A failed TLS handshake is reported on the ``tracekit`` logger, once, naming the
      endpoint, the reason and the CA bundle: the exporter's own final log line says only
      "timeout, max retries or shutdown".
    """
    import requests

    class Session(requests.Session):
        def merge_environment_settings(
            self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
        ) -> dict[str, Any]:
            merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
            if verify is None and certificate is not None:
                merged["verify"] = self.verify
            return merged

        def send(self, request: Any, **kwargs: Any) -> Any:
            try:
                response = super().send(request, **kwargs)
            except requests.exceptions.SSLError as exc:
                _report_tls_failure(str(request.url), exc, certificate)
                if observe is not None:
                    observe(exc)
                raise
            except Exception as exc:
                if observe is not None:
                    observe(exc)
                raise
            if observe is not None:
                observe(response)
            return response

    return Session()


def _report_tls_failure(url: str, exc: BaseException, certificate: str | None) -> None:
    cause = _ssl_cause(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        reason = f"the collector's certificate was rejected ({cause.verify_message})"
        if certificate is None:
            hint = "it was checked against the system CA bundle; set OTEL_EXPORTER_OTLP_CERTIFICATE"
        else:
            hint = f"it was checked against {certificate} (OTEL_EXPORTER_OTLP_CERTIFICATE)"
    else:
        reason = str(cause or exc)
        hint = (
            "if the collector requires a client certificate, set OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE "
            "and OTEL_EXPORTER_OTLP_CLIENT_KEY"
        )
    warn_once(
        f"otlp-tls {url}",
        "tracekit: TLS handshake with the collector at %s failed: %s; %s",
        url,
        reason,
        hint,
    )


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    """The ssl error under the layers of requests and urllib3 exceptions, if any."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        item = pending.pop(0)
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ssl.SSLError):
            return item
        pending.extend((item.__cause__, item.__context__, getattr(item, "reason", None), *item.args))
    return None


def _grpc_exporter(settings: Settings, endpoint: str) -> SpanExporter:
    import grpc
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GRPCExporter

    scheme = urlsplit(endpoint).scheme if "://" in endpoint else ""
    insecure = scheme == "http" or (scheme == "" and settings.insecure)
    credentials = None
    if not insecure:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(settings.certificate),
            private_key=_read(settings.client_key),
            certificate_chain=_read(settings.client_certificate),
        )
    return GRPCExporter(
        endpoint=endpoint,
        insecure=insecure,
        credentials=credentials,
        # gRPC refuses metadata keys with capitals ("Illegal header key"); HTTP header names
        # are case-insensitive, so lowercasing them changes nothing a collector sees.
        headers={key.lower(): value for key, value in settings.headers.items()},
        timeout=settings.timeout,
        compression=grpc.Compression.Gzip
        if settings.compression == "gzip"
        else grpc.Compression.NoCompression,
    )


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as file:
        return file.read()
