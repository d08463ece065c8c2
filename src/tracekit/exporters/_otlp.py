"""The OTLP exporter for the configured protocol, built from explicit settings.

Only the module of the chosen protocol is imported: the gRPC stack costs a noticeable
part of start-up and is left alone unless ``grpc`` is asked for.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from opentelemetry.sdk.trace.export import SpanExporter

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


def make_otlp_exporter(settings: Settings, endpoint: str) -> SpanExporter:
    """An OTLP span exporter for ``settings.protocol`` sending to ``endpoint``."""
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
    )


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
