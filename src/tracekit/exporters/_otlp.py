"""The OTLP exporter for the configured protocol, built from explicit settings.

Only the module of the chosen protocol is imported, and only when the first spans are
exported (:class:`OTLPSpanExporter`): the HTTP stack (requests, protobuf) and even more
the gRPC one cost more start-up than the rest of tracekit together, and a process that
never exports a span never pays for them.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tracekit import _fork
from tracekit._logging import warn_once
from tracekit._settings import Settings

if TYPE_CHECKING:
    import ssl

    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["OTLPSpanExporter", "find_cause", "import_grpc_exporter", "make_otlp_exporter", "traces_endpoint"]

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


#: The longest ``fork()`` waits for an exporter's first export to finish.
FORK_WAIT = 5.0


class OTLPSpanExporter(SpanExporter):
    """tracekit's OTLP exporter: the OpenTelemetry one, built when it first has spans to send.

    ``build()`` makes the real exporter; it runs on the export thread, so the application's
    start-up and its request path never wait for the imports it brings.

    Fork safety: ``fork()`` waits (up to :data:`FORK_WAIT` seconds) for the first export in
    progress, which builds the exporter and sends the first request: both import modules on
    the export thread (requests imports ``netrc`` on its first request), and a child forked
    meanwhile would inherit a module lock held by a thread it does not have, and hang on its
    own first export. A forked child builds an exporter of its own on first use: the
    parent's holds connections (an HTTP keep-alive socket, a gRPC channel) that two processes
    must not share. The parent's is kept, unused, so that nothing in the child closes what
    the parent still uses.
    """

    def __init__(self, build: Callable[[], SpanExporter], protocol: str, endpoint: str) -> None:
        self._build = build
        self._lock = _fork.lock()
        self._first_export = _fork.lock()
        self._first_export_done = False
        self._waited_for_first_export = False
        self._exporter: SpanExporter | None = None
        self._is_shut_down = False
        self._abandoned: list[SpanExporter] = []
        # As the SDK's exporter names it in its log lines (gRPC: host:port).
        self._endpoint = urlsplit(endpoint).netloc or endpoint if protocol == "grpc" else endpoint
        self._protocol = protocol
        _fork.in_child(self, OTLPSpanExporter._after_fork_in_child)
        if hasattr(os, "register_at_fork"):
            ref = weakref.ref(self)

            def call(method: Callable[[OTLPSpanExporter], None]) -> Callable[[], None]:
                def hook() -> None:
                    exporter = ref()
                    if exporter is not None:
                        method(exporter)

                return hook

            os.register_at_fork(
                before=call(OTLPSpanExporter._before_fork),
                after_in_parent=call(OTLPSpanExporter._after_fork_in_parent),
            )

    @property
    def exporter(self) -> SpanExporter:
        """The OpenTelemetry exporter, built on first use."""
        with self._lock:
            if self._exporter is None:
                self._exporter = self._build()
            return self._exporter

    def prepare(self) -> None:
        """Build the OpenTelemetry exporter now; the export thread calls this as it starts.

        So the exporter's imports, and gRPC's threads, come with a process's first span: not
        at ``configure()`` (a pre-fork master that makes no span stays single-threaded) and
        not at exit (where Python refuses to start the threads gRPC needs). A fork meanwhile
        waits for it, as for the first export.
        """
        with self._first_export:
            self.exporter  # noqa: B018
            _import_request_modules()

    def import_modules(self) -> None:
        """Import, on the calling thread, every module exporting will import; start no thread.

        For a server that forks with no hook Python can run first (uWSGI): a child forked
        while the export thread is importing a module would wait for that module for ever.
        """
        if self._protocol == "grpc":
            import_grpc_exporter()  # building it would start gRPC's threads
        else:
            self.prepare()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._is_shut_down:
            return SpanExportResult.FAILURE
        if self._first_export_done:
            return self.exporter.export(spans)
        with self._first_export:
            try:
                return self.exporter.export(spans)
            finally:
                self._first_export_done = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True if self._exporter is None else self._exporter.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._is_shut_down = True
        with self._lock:
            exporter = self._exporter
        if exporter is not None:
            exporter.shutdown()

    def _before_fork(self) -> None:
        if not self._first_export_done:
            self._waited_for_first_export = self._first_export.acquire(timeout=FORK_WAIT)
        self._lock.acquire()

    def _after_fork_in_parent(self) -> None:
        self._lock.release()
        if self._waited_for_first_export:
            self._waited_for_first_export = False
            self._first_export.release()

    def _after_fork_in_child(self) -> None:
        # Both locks were made with _fork.lock(): the child finds them released.
        self._first_export_done = False
        self._waited_for_first_export = False
        if self._exporter is not None:
            self._abandoned.append(self._exporter)
            self._exporter = None


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

    session = Session()
    _fork.in_child(session, _release_connection_pools)
    return session


def _release_connection_pools(session: Any) -> None:
    """In a forked child, the parent's connection pools are left as the export thread had them.

    urllib3 closes a pool's connections at exit (a ``weakref.finalize``), which waits on the
    pool's lock: held for ever in a child forked while the parent's export thread was taking
    a connection. The locks are released here, so the child ends; closing its copies of the
    parent's sockets sends nothing on them.
    """
    for adapter in session.adapters.values():
        managers = [getattr(adapter, "poolmanager", None), *getattr(adapter, "proxy_manager", {}).values()]
        for manager in managers:
            pools = getattr(manager, "pools", None)
            if pools is None:
                continue
            pools.lock._at_fork_reinit()
            for key in pools.keys():  # noqa: SIM118 (urllib3's container refuses iteration)
                queue = getattr(pools.get(key), "pool", None)
                mutex = getattr(queue, "mutex", None)
                if mutex is not None:
                    mutex._at_fork_reinit()


def _report_tls_failure(url: str, exc: BaseException, certificate: str | None) -> None:
    import ssl

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
    import ssl

    cause = find_cause(exc, ssl.SSLError)
    return cause if isinstance(cause, ssl.SSLError) else None


def find_cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first exception of ``kind`` in ``exc``, its causes, contexts, reasons and arguments.

    requests and urllib3 wrap the error that says what happened (``ssl.SSLError``,
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


def _import_request_modules() -> None:
    """What requests imports on its first request (reading ~/.netrc), imported beforehand."""
    import netrc  # noqa: F401


def import_grpc_exporter() -> None:
    """Import OpenTelemetry's gRPC span exporter: no thread starts until one is built."""
    import opentelemetry.exporter.otlp.proto.grpc.trace_exporter  # noqa: F401


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
