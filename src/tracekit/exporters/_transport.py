"""The two OTLP transports, sending pre-encoded requests and saying exactly what happened.

* :class:`HTTPTransport`: OTLP/HTTP with a protobuf body on one keep-alive
  ``httpx.HTTPTransport`` (httpx's connection pool, without the client's cookies, auth
  and redirect handling, which cost as much again per request and do nothing here), gzip
  when configured, TLS and mutual TLS from the settings.
* :class:`GRPCTransport`: OTLP/gRPC through a channel method whose serializers are the
  identity, so the bytes :mod:`tracekit.exporters._encode` made go out as they are.

``send`` never raises for a network or protocol problem: it returns an :class:`Outcome`
naming the cause (refused, timeout, TLS, an HTTP status or gRPC code), whether the OTLP
specification allows a retry, and the delay the collector asked for. Retrying, counting and
logging are the exporter's job.
"""

from __future__ import annotations

# httpx encodes host names with the ``idna`` codec, whose module Python imports on first
# use: imported here, with the transport, rather than by a first request on the export
# thread while a fork could take place.
import encodings.idna  # noqa: F401
import gzip
import socket
import ssl
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from tracekit._version import __version__
from tracekit.exporters._responses import partial_success, rpc_status

__all__ = ["GRPCTransport", "HTTPTransport", "Outcome", "find_cause"]

#: HTTP statuses the OTLP specification says to retry.
RETRYABLE_HTTP = frozenset({429, 502, 503, 504})
#: gRPC codes the OTLP specification says to retry (RESOURCE_EXHAUSTED only with RetryInfo).
RETRYABLE_GRPC = frozenset(
    {"CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE", "DATA_LOSS"}
)
_GRPC_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
#: As the OTLP exporter specification asks: the exporter, its language and version.
USER_AGENT = f"OTel-OTLP-Exporter-Python/{__version__} (tracekit)"


@dataclass(frozen=True)
class Outcome:
    """What became of one request.

    ``cause`` is short and stable (``"sent"``, ``"connection refused"``, ``"timeout"``,
    ``"TLS verification failed"``, ``"TLS handshake failed"``, ``"host not found"``,
    ``"connection failed"``, ``"HTTP 503"``, ``"gRPC UNAVAILABLE"``): warnings are grouped
    by it. ``detail`` is what the collector or the network said.
    """

    delivered: bool
    cause: str
    detail: str = ""
    retryable: bool = False
    retry_after: float | None = None
    rejected: int = 0
    status: int | str | None = None


def find_cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first exception of ``kind`` in ``exc``, its causes, contexts, reasons and arguments.

    HTTP clients wrap the error that says what happened (``ssl.SSLError``,
    ``ConnectionRefusedError``, ``socket.gaierror``) in layers of their own exceptions.
    """
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        item = pending.pop(0)
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, kind):
            return item
        pending.extend((item.__cause__, item.__context__, getattr(item, "reason", None), *item.args))
    return None


def _network_outcome(exc: BaseException) -> Outcome:
    """The outcome of a request that raised ``exc`` before any answer came."""
    verify = find_cause(exc, ssl.SSLCertVerificationError)
    if isinstance(verify, ssl.SSLCertVerificationError):
        return Outcome(False, "TLS verification failed", str(verify.verify_message or verify))
    tls = find_cause(exc, ssl.SSLError)
    if tls is not None:
        return Outcome(False, "TLS handshake failed", str(tls))
    if find_cause(exc, ConnectionRefusedError) is not None:
        return Outcome(False, "connection refused", retryable=True)
    if find_cause(exc, socket.gaierror) is not None:
        return Outcome(False, "host not found", str(find_cause(exc, socket.gaierror)), retryable=True)
    name = type(exc).__name__
    if "Timeout" in name or find_cause(exc, TimeoutError) is not None:
        return Outcome(False, "timeout", "no answer in time", retryable=True)
    return Outcome(False, "connection failed", f"{name}: {exc}", retryable=True)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    import time

    return max(0.0, when.timestamp() - time.time())


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as file:
        return file.read()


class HTTPTransport:
    """OTLP/HTTP: ``POST`` protobuf bodies to ``endpoint`` over one keep-alive connection."""

    def __init__(
        self,
        endpoint: str,
        *,
        headers: dict[str, str],
        timeout: float,
        gzip_body: bool,
        certificate: str | None = None,
        client_key: str | None = None,
        client_certificate: str | None = None,
    ) -> None:
        import httpx

        self.endpoint = endpoint
        self.timeout = timeout
        self.tls_files = (certificate, client_certificate, client_key)
        self.gzip = gzip_body
        self._headers = {"User-Agent": USER_AGENT, **headers, "Content-Type": "application/x-protobuf"}
        if gzip_body:
            self._headers["Content-Encoding"] = "gzip"
        verify: ssl.SSLContext | bool = False  # plain http: no CA bundle to load
        if urlsplit(endpoint).scheme == "https":
            verify = ssl.create_default_context(cafile=certificate)
            if client_certificate is not None:
                verify.load_cert_chain(client_certificate, client_key)
        self.proxy = _environment_proxy(endpoint)
        self._pool = httpx.HTTPTransport(verify=verify, proxy=self.proxy)
        self._request = httpx.Request
        self._timeout_error = httpx.TimeoutException
        self._http_error = httpx.HTTPError

    def send(self, body: bytes, timeout: float) -> Outcome:
        """Send one request; wait at most ``timeout`` seconds for each network step."""
        if self.gzip:
            body = gzip.compress(body, compresslevel=6)
        try:
            limits = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
            request = self._request("POST", self.endpoint, content=body, headers=self._headers)
            request.extensions["timeout"] = limits
            response = self._pool.handle_request(request)
            try:
                response.read()
            finally:
                response.close()
        except self._timeout_error:
            return Outcome(False, "timeout", f"no answer within {timeout:.3g} s", retryable=True)
        except (self._http_error, OSError) as exc:
            return _network_outcome(exc)
        status = response.status_code
        content = response.content
        if 200 <= status < 300:
            rejected, message = partial_success(content)
            return Outcome(True, "sent", message, rejected=rejected, status=status)
        message = _http_message(response.headers.get("content-type", ""), content)
        retryable = status in RETRYABLE_HTTP
        retry_after = _retry_after(response.headers.get("retry-after")) if retryable else None
        detail = f"{status} {response.reason_phrase}" + (f": {message}" if message else "")
        return Outcome(False, f"HTTP {status}", detail, retryable, retry_after, status=status)

    def close(self) -> None:
        self._pool.close()


def _environment_proxy(endpoint: str) -> str | None:
    """The proxy ``HTTP_PROXY`` / ``HTTPS_PROXY`` name for ``endpoint``, unless ``NO_PROXY`` exempts it."""
    import urllib.request

    parts = urlsplit(endpoint)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


def _http_message(content_type: str, content: bytes) -> str:
    """The collector's explanation in a failed response: a ``google.rpc.Status`` or text."""
    if "protobuf" in content_type:
        message, _ = rpc_status(content)
        if message:
            return message[:500]
    text = content.decode("utf-8", "replace").strip()
    return text.splitlines()[0][:500] if text else ""


class GRPCTransport:
    """OTLP/gRPC: the ``TraceService/Export`` method with bytes in and bytes out."""

    def __init__(
        self,
        endpoint: str,
        *,
        insecure: bool,
        headers: dict[str, str],
        gzip_body: bool,
        certificate: str | None = None,
        client_key: str | None = None,
        client_certificate: str | None = None,
    ) -> None:
        import grpc

        self.endpoint = endpoint
        self.target = target = urlsplit(endpoint).netloc if "://" in endpoint else endpoint
        self.insecure = insecure
        self.tls_files = (certificate, client_certificate, client_key)
        options = [("grpc.max_send_message_length", -1), ("grpc.primary_user_agent", USER_AGENT)]
        if insecure:
            self._channel = grpc.insecure_channel(target, options=options)
        else:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(certificate),
                private_key=_read(client_key),
                certificate_chain=_read(client_certificate),
            )
            self._channel = grpc.secure_channel(target, credentials, options=options)
        self._export: Any = self._channel.unary_unary(
            _GRPC_METHOD, request_serializer=None, response_deserializer=None
        )
        # gRPC refuses metadata keys with capitals; HTTP header names are case-insensitive.
        self._metadata = tuple((key.lower(), value) for key, value in headers.items())
        self._compression = grpc.Compression.Gzip if gzip_body else grpc.Compression.NoCompression
        self._rpc_error = grpc.RpcError

    def send(self, body: bytes, timeout: float) -> Outcome:
        """Send one request; give up after ``timeout`` seconds."""
        try:
            response = self._export(
                body, timeout=timeout, metadata=self._metadata, compression=self._compression
            )
        except self._rpc_error as exc:
            return _grpc_outcome(exc)
        rejected, message = partial_success(response if isinstance(response, bytes) else b"")
        return Outcome(True, "sent", message, rejected=rejected, status="OK")

    def close(self) -> None:
        self._channel.close()


def _grpc_outcome(exc: Any) -> Outcome:
    code = exc.code()
    name = getattr(code, "name", str(code))
    details = str(exc.details() or "")
    delay = None
    for key, value in exc.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            _, delay = rpc_status(value)
    lowered = details.lower()
    if name == "UNAVAILABLE":
        if "certificate verify failed" in lowered or "certificate_verify_failed" in lowered:
            return Outcome(False, "TLS verification failed", details, status=name)
        if "handshake" in lowered or "ssl" in lowered:
            return Outcome(False, "TLS handshake failed", details, status=name)
        if "connection refused" in lowered:
            return Outcome(False, "connection refused", retryable=True, status=name)
        if "dns" in lowered or "name resolution" in lowered:
            return Outcome(False, "host not found", details, retryable=True, status=name)
    if name == "DEADLINE_EXCEEDED":
        return Outcome(False, "timeout", details, retryable=True, status=name)
    retryable = name in RETRYABLE_GRPC or (name == "RESOURCE_EXHAUSTED" and delay is not None)
    return Outcome(False, f"gRPC {name}", details, retryable, delay, status=name)
