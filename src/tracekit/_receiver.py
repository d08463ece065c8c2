"""A real OTLP trace receiver on 127.0.0.1, for tests, benchmarks and demos.

:class:`OTLPReceiver` runs the two transports a collector offers, both decoding the
official ``ExportTraceServiceRequest`` message:

* OTLP/HTTP: ``POST /v1/traces`` with a protobuf body (``Content-Encoding: gzip`` or
  ``deflate`` accepted), answered with an ``ExportTraceServiceResponse``;
* OTLP/gRPC: ``opentelemetry.proto.collector.trace.v1.TraceService/Export``.

Both listen on 127.0.0.1 only, on ports the system picks, optionally over TLS (and mutual
TLS when a client CA is given). Every request is recorded with its headers (or gRPC
metadata); :attr:`OTLPReceiver.spans` flattens them into :class:`ReceivedSpan` values
that are easy to assert on::

    with OTLPReceiver() as receiver:
        tracekit.configure(endpoint=receiver.http_endpoint)
        ...
        [span] = receiver.wait_for_spans(1, timeout=5)
        assert span.name == "checkout"

It can also misbehave like a collector in trouble, so that an exporter's retries and error
handling meet real sockets: :meth:`OTLPReceiver.inject` queues :class:`Fault` values, and
each export request that arrives (HTTP or gRPC) is answered by the next one: an HTTP error
status with ``Retry-After``, a gRPC error with ``RetryInfo``, a partial success, or an
answer that comes late or never::

    receiver.inject(Fault(http_status=503, retry_after=1), Fault(rejected_spans=1))

Memory, body sizes, connections and every wait are bounded. grpcio and the protobuf
modules are imported when a receiver starts, never when tracekit is imported.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import math
import os
import socket
import socketserver
import ssl
import threading
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any, Union

from opentelemetry.trace import SpanKind, StatusCode

if TYPE_CHECKING:
    import grpc  # type: ignore[import-untyped, unused-ignore]
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

__all__ = ["Fault", "OTLPReceiver", "ReceivedEvent", "ReceivedLink", "ReceivedRequest", "ReceivedSpan"]

StrPath = Union[str, "os.PathLike[str]"]

#: An attribute value as Python sees it: arrays become tuples (as in the SDK), key-value
#: lists become dicts, an empty value becomes ``None``.
AttributeValue = Any

_TRACES_PATH = "/v1/traces"
_GRPC_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
_GRPC_METHOD = f"/{_GRPC_SERVICE}/Export"
_PROTOBUF = "application/x-protobuf"

#: A :class:`Fault`'s ``delay`` is cut to this: every wait of the receiver is bounded.
_MAX_FAULT_DELAY = 30.0
_FAULT_MESSAGE = "fault injected by OTLPReceiver"
#: The ``google.rpc.Status`` code an HTTP error body carries when the fault names no gRPC
#: code: gRPC's own HTTP-to-gRPC mapping (grpc/doc/http-grpc-status-mapping.md).
_HTTP_TO_GRPC_CODE = {
    400: "INTERNAL",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "UNIMPLEMENTED",
    429: "UNAVAILABLE",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "UNAVAILABLE",
}

# OTLP SpanKind numbers are the API's plus one; 0 means unspecified.
_KINDS = {
    1: SpanKind.INTERNAL,
    2: SpanKind.SERVER,
    3: SpanKind.CLIENT,
    4: SpanKind.PRODUCER,
    5: SpanKind.CONSUMER,
}
_STATUSES = {0: StatusCode.UNSET, 1: StatusCode.OK, 2: StatusCode.ERROR}


@dataclass(frozen=True)
class ReceivedEvent:
    """One span event as it arrived."""

    name: str
    time_unix_nano: int
    attributes: Mapping[str, AttributeValue]


@dataclass(frozen=True)
class ReceivedLink:
    """One span link as it arrived; ids are lowercase hex."""

    trace_id: str
    span_id: str
    attributes: Mapping[str, AttributeValue]


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as it arrived, with its resource and instrumentation scope.

    Ids are lowercase hex (32 digits for trace ids, 16 for span ids); ``parent_span_id``
    is ``None`` for a root span. ``kind`` is ``None`` when the sender left it unspecified.
    """

    name: str
    kind: SpanKind | None
    trace_id: str
    span_id: str
    parent_span_id: str | None
    attributes: Mapping[str, AttributeValue]
    status_code: StatusCode
    status_message: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    trace_state: str
    flags: int
    events: tuple[ReceivedEvent, ...]
    links: tuple[ReceivedLink, ...]
    resource: Mapping[str, AttributeValue]
    scope_name: str
    scope_version: str
    protocol: str


@dataclass(frozen=True)
class ReceivedRequest:
    """One export request: how it came and what it carried.

    ``headers`` are the HTTP request headers or the gRPC invocation metadata, keys in
    lowercase. ``content_encoding`` is the HTTP ``Content-Encoding`` (``None`` for gRPC,
    whose compression is transparent). ``client_common_name`` is the common name of the
    client certificate when one was presented over TLS.
    """

    protocol: str
    path: str
    headers: Mapping[str, str]
    content_encoding: str | None
    body_size: int
    client_common_name: str | None
    message: ExportTraceServiceRequest = field(repr=False)

    @functools.cached_property
    def spans(self) -> tuple[ReceivedSpan, ...]:
        """The spans it carried, flattened when first read (a benchmark only counts them)."""
        return tuple(_flatten(self.message, self.protocol))

    @property
    def span_count(self) -> int:
        return sum(
            len(scope.spans) for resource in self.message.resource_spans for scope in resource.scope_spans
        )


@dataclass(frozen=True)
class Fault:
    """How to answer one export request; the defaults answer it normally.

    ``http_status`` applies to OTLP/HTTP requests and ``grpc_code`` (a
    ``grpc.StatusCode`` name such as ``"UNAVAILABLE"``) to OTLP/gRPC ones; set both for a
    fault that whichever transport comes should fail. A failure carries ``message``: in a
    ``google.rpc.Status`` body for HTTP, as the gRPC status details for gRPC.
    ``retry_after`` (seconds) adds a ``Retry-After`` header (whole seconds, rounded up) to
    an HTTP answer and a ``google.rpc.RetryInfo`` detail to a gRPC error.

    ``rejected_spans`` makes a successful answer a partial success rejecting that many
    spans, with ``message`` as its ``error_message``; the request's spans are still
    recorded. A request answered with a failure is counted in
    :attr:`OTLPReceiver.attempts` but its spans are not recorded.

    ``delay`` holds the answer back that many seconds (at most 30), to play a collector
    that does not answer within the exporter's timeout; stopping the receiver ends the wait
    and the request gets no answer.
    """

    http_status: int | None = None
    grpc_code: str | None = None
    retry_after: float | None = None
    rejected_spans: int = 0
    message: str = _FAULT_MESSAGE
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.http_status is not None and not 200 <= self.http_status <= 599:
            raise ValueError(f"Fault: http_status {self.http_status} is not a final HTTP status (200-599)")
        if self.grpc_code is not None:
            import grpc  # type: ignore[import-untyped, unused-ignore]

            if self.grpc_code not in grpc.StatusCode.__members__ or self.grpc_code == "OK":
                raise ValueError(f"Fault: grpc_code {self.grpc_code!r} is not an error grpc.StatusCode name")
        if self.retry_after is not None and not (math.isfinite(self.retry_after) and self.retry_after >= 0):
            raise ValueError(f"Fault: retry_after {self.retry_after} is not a number of seconds >= 0")
        if not (math.isfinite(self.delay) and self.delay >= 0):
            raise ValueError(f"Fault: delay {self.delay} is not a number of seconds >= 0")
        if self.rejected_spans < 0:
            raise ValueError(f"Fault: rejected_spans {self.rejected_spans} is negative")

    @property
    def http_failure(self) -> bool:
        """Whether an HTTP request taking this fault gets an error status."""
        return self.http_status is not None and not 200 <= self.http_status <= 299

    def _response(self) -> Any:
        """The ``ExportTraceServiceResponse`` of a successful answer."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTracePartialSuccess,
            ExportTraceServiceResponse,
        )

        if not self.rejected_spans:
            return ExportTraceServiceResponse()
        return ExportTraceServiceResponse(
            partial_success=ExportTracePartialSuccess(
                rejected_spans=self.rejected_spans, error_message=self.message
            )
        )


class OTLPReceiver:
    """An OTLP/HTTP and OTLP/gRPC trace receiver bound to 127.0.0.1.

    ``certfile``/``keyfile`` (PEM) turn TLS on for both servers; ``client_ca_file`` also
    requires clients to present a certificate signed by that CA (mutual TLS). At most
    ``max_requests`` requests are kept (the oldest are forgotten; :attr:`span_count` still
    counts every span), and a request body may be at most ``max_body_bytes`` once
    decompressed.
    """

    def __init__(
        self,
        *,
        certfile: StrPath | None = None,
        keyfile: StrPath | None = None,
        client_ca_file: StrPath | None = None,
        max_requests: int = 10_000,
        max_body_bytes: int = 32 * 1024 * 1024,
        max_connections: int = 64,
    ) -> None:
        if (certfile is None) != (keyfile is None):
            raise ValueError("OTLPReceiver: certfile and keyfile go together")
        if client_ca_file is not None and certfile is None:
            raise ValueError("OTLPReceiver: client_ca_file (mutual TLS) needs certfile and keyfile")
        self._certfile = None if certfile is None else os.fspath(certfile)
        self._keyfile = None if keyfile is None else os.fspath(keyfile)
        self._client_ca_file = None if client_ca_file is None else os.fspath(client_ca_file)
        self.max_body_bytes = max_body_bytes
        self._max_connections = max_connections
        self._condition = threading.Condition()
        self._requests: collections.deque[ReceivedRequest] = collections.deque(maxlen=max_requests)
        self._errors: collections.deque[str] = collections.deque(maxlen=1000)
        self._span_count = 0
        self._faults: collections.deque[Fault] = collections.deque()
        self._attempts = 0
        self._faults_served = 0
        self._stopping = threading.Event()
        self._http: _HTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self._grpc: grpc.Server | None = None
        self._grpc_port = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def tls(self) -> bool:
        """Whether both servers speak TLS."""
        return self._certfile is not None

    @property
    def running(self) -> bool:
        return self._http is not None

    def start(self) -> OTLPReceiver:
        """Start both servers; returns ``self``. Starting twice is an error."""
        if self._http is not None:
            raise RuntimeError("OTLPReceiver is already running")
        self._stopping.clear()
        try:
            self._start_http()
            self._start_grpc()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop both servers and close every connection, within about ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        self._stopping.set()  # ends the delay of any delayed answer
        if self._grpc is not None:
            self._grpc.stop(grace=0).wait(max(0.0, deadline - time.monotonic()))
            self._grpc = None
        http, self._http = self._http, None
        if http is not None:
            http.shutdown()
            http.server_close()
            http.close_connections(max(0.0, deadline - time.monotonic()))
        if self._http_thread is not None:
            self._http_thread.join(max(0.0, deadline - time.monotonic()))
            self._http_thread = None

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ endpoints

    @property
    def http_port(self) -> int:
        if self._http is None:
            raise RuntimeError("OTLPReceiver is not running")
        return int(self._http.server_address[1])

    @property
    def grpc_port(self) -> int:
        if self._grpc is None:
            raise RuntimeError("OTLPReceiver is not running")
        return self._grpc_port

    @property
    def http_endpoint(self) -> str:
        """Base URL of the HTTP server (what ``OTEL_EXPORTER_OTLP_ENDPOINT`` takes)."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.http_port}"

    @property
    def http_traces_endpoint(self) -> str:
        """Full traces URL (what ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` takes)."""
        return self.http_endpoint + _TRACES_PATH

    @property
    def grpc_endpoint(self) -> str:
        """URL of the gRPC server, ``http://`` or ``https://`` as TLS is off or on."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.grpc_port}"

    # ------------------------------------------------------------------ what arrived

    @property
    def requests(self) -> list[ReceivedRequest]:
        """The requests received so far (the last ``max_requests``), oldest first."""
        with self._condition:
            return list(self._requests)

    @property
    def spans(self) -> list[ReceivedSpan]:
        """Every span of :attr:`requests`, in the order they arrived."""
        with self._condition:
            return [span for request in self._requests for span in request.spans]

    @property
    def span_count(self) -> int:
        """How many spans arrived since start (or :meth:`clear`), forgotten ones included."""
        with self._condition:
            return self._span_count

    @property
    def errors(self) -> list[str]:
        """Rejected requests and failed TLS handshakes, one line each."""
        with self._condition:
            return list(self._errors)

    @property
    def attempts(self) -> int:
        """How many export requests reached the handler since start (or :meth:`clear`).

        Every decoded request counts, faulted or not; a request refused as malformed (see
        :attr:`errors`) does not.
        """
        with self._condition:
            return self._attempts

    @property
    def faults_served(self) -> int:
        """How many injected faults requests have taken since start (or :meth:`clear`)."""
        with self._condition:
            return self._faults_served

    def clear(self) -> None:
        """Forget every request, span and error recorded so far, and the queued faults."""
        with self._condition:
            self._requests.clear()
            self._errors.clear()
            self._span_count = 0
            self._faults.clear()
            self._attempts = 0
            self._faults_served = 0

    # ------------------------------------------------------------------ faults

    def inject(self, *faults: Fault) -> None:
        """Queue ``faults``: each export request that arrives takes the next one.

        Requests are answered normally once the queue is empty.
        """
        for fault in faults:
            if not isinstance(fault, Fault):
                raise TypeError(f"OTLPReceiver.inject: {fault!r} is not a Fault")
        with self._condition:
            self._faults.extend(faults)

    def _begin_attempt(self) -> Fault | None:
        """Count an export request; return the fault it is to be answered with, if any."""
        with self._condition:
            self._attempts += 1
            fault = self._faults.popleft() if self._faults else None
            if fault is not None:
                self._faults_served += 1
            self._condition.notify_all()
            return fault

    def _hold_back(self, fault: Fault | None) -> bool:
        """Wait out the fault's delay; ``False`` when the receiver stopped meanwhile."""
        if fault is None or fault.delay <= 0:
            return True
        return not self._stopping.wait(min(fault.delay, _MAX_FAULT_DELAY))

    def wait_for_spans(self, count: int, timeout: float = 10.0) -> list[ReceivedSpan]:
        """Wait until at least ``count`` spans have arrived; return :attr:`spans`.

        Raises :class:`TimeoutError` (saying what did arrive) after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._span_count < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    names = [span.name for request in self._requests for span in request.spans]
                    raise TimeoutError(
                        f"OTLPReceiver: expected {count} spans within {timeout:g} s, "
                        f"received {self._span_count}: {names}; errors: {list(self._errors)}"
                    )
                self._condition.wait(remaining)
            return [span for request in self._requests for span in request.spans]

    def wait_for_errors(self, count: int, timeout: float = 10.0) -> list[str]:
        """Wait until at least ``count`` errors were recorded; return :attr:`errors`."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self._errors) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    errors = list(self._errors)
                    raise TimeoutError(
                        f"OTLPReceiver: expected {count} errors within {timeout:g} s, got {errors}"
                    )
                self._condition.wait(remaining)
            return list(self._errors)

    # ------------------------------------------------------------------ recording

    def _record(
        self,
        *,
        protocol: str,
        path: str,
        headers: Mapping[str, str],
        content_encoding: str | None,
        body_size: int,
        client_common_name: str | None,
        message: ExportTraceServiceRequest,
    ) -> None:
        request = ReceivedRequest(
            protocol=protocol,
            path=path,
            headers=dict(headers),
            content_encoding=content_encoding,
            body_size=body_size,
            client_common_name=client_common_name,
            message=message,
        )
        with self._condition:
            self._requests.append(request)
            self._span_count += request.span_count
            self._condition.notify_all()

    def _record_error(self, error: str) -> None:
        with self._condition:
            self._errors.append(error)
            self._condition.notify_all()

    # ------------------------------------------------------------------ HTTP

    def _server_ssl_context(self) -> ssl.SSLContext | None:
        if self._certfile is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self._certfile, self._keyfile)
        if self._client_ca_file is not None:
            context.load_verify_locations(self._client_ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def _start_http(self) -> None:
        server = _HTTPServer(self, self._server_ssl_context(), self._max_connections)
        self._http = server
        self._http_thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"otlp-receiver-http-{server.server_address[1]}",
            daemon=True,
        )
        self._http_thread.start()

    # ------------------------------------------------------------------ gRPC

    def _start_grpc(self) -> None:
        import grpc  # type: ignore[import-untyped, unused-ignore]
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        handler = grpc.method_handlers_generic_handler(
            _GRPC_SERVICE,
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    self._grpc_export,
                    request_deserializer=ExportTraceServiceRequest.FromString,
                    response_serializer=ExportTraceServiceResponse.SerializeToString,
                )
            },
        )
        server = grpc.server(
            ThreadPoolExecutor(max_workers=4, thread_name_prefix="otlp-receiver-grpc"),
            handlers=[handler],
            maximum_concurrent_rpcs=self._max_connections,
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", self.max_body_bytes),
            ],
        )
        address = "127.0.0.1:0"
        if self._certfile is None:
            port = server.add_insecure_port(address)
        else:
            credentials = grpc.ssl_server_credentials(
                [(_read(self._keyfile), _read(self._certfile))],
                root_certificates=_read(self._client_ca_file) if self._client_ca_file else None,
                require_client_auth=self._client_ca_file is not None,
            )
            port = server.add_secure_port(address, credentials)
        if not port:
            raise OSError("OTLPReceiver: could not bind a gRPC port on 127.0.0.1")
        server.start()
        self._grpc = server
        self._grpc_port = port

    def _grpc_export(self, message: ExportTraceServiceRequest, context: grpc.ServicerContext) -> Any:
        import grpc  # type: ignore[import-untyped, unused-ignore]

        fault = self._begin_attempt()
        if not self._hold_back(fault):
            context.abort(grpc.StatusCode.UNAVAILABLE, "OTLPReceiver stopped")
        if fault is not None and fault.grpc_code is not None:
            _abort_grpc(context, fault)
        headers: dict[str, str] = {}
        for key, value in context.invocation_metadata():
            headers[key.lower()] = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        auth: Mapping[str, Any] = context.auth_context()
        names = list(auth.get("x509_common_name", ()))
        common_name = names[0].decode("utf-8", "replace") if names else None
        self._record(
            protocol="grpc",
            path=_GRPC_METHOD,
            headers=headers,
            content_encoding=None,
            body_size=message.ByteSize(),
            client_common_name=common_name,
            message=message,
        )
        return (fault or _NO_FAULT)._response()


_NO_FAULT = Fault()


def _abort_grpc(context: grpc.ServicerContext, fault: Fault) -> None:
    """Fail a gRPC call as ``fault`` says, with ``RetryInfo`` in the rich status if asked.

    The rich status is what ``grpc_status.rpc_status.to_status`` would build (grpcio-status
    is not a dependency): a ``google.rpc.Status`` in the ``grpc-status-details-bin``
    trailing metadata, whose code and message match the call's.
    """
    import grpc  # type: ignore[import-untyped, unused-ignore]
    from google.protobuf.any_pb2 import Any as AnyMessage  # type: ignore[import-untyped, unused-ignore]
    from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped, unused-ignore]

    assert fault.grpc_code is not None
    code = grpc.StatusCode[fault.grpc_code]
    if fault.retry_after is not None:
        retry_info = error_details_pb2.RetryInfo()
        retry_info.retry_delay.FromNanoseconds(round(fault.retry_after * 1e9))
        detail = AnyMessage()
        detail.Pack(retry_info)
        status = status_pb2.Status(code=code.value[0], message=fault.message, details=[detail])
        context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
    context.abort(code, fault.message)


# ---------------------------------------------------------------------- the HTTP server


class _HTTPServer(ThreadingHTTPServer):
    """A threading HTTP server on 127.0.0.1 that does TLS handshakes off the accept loop."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = False

    def __init__(self, receiver: OTLPReceiver, context: ssl.SSLContext | None, max_connections: int) -> None:
        self.receiver = receiver
        self.ssl_context = context
        self._max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._closing = False
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._handler_threads: set[threading.Thread] = set()
        super().__init__(("127.0.0.1", 0), _HTTPHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve the host name (a DNS query); not needed here.
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.receiver._record_error(f"http: more than {self._max_connections} connections; one refused")
            self.shutdown_request(request)
            return
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name="otlp-receiver-http-connection",
            daemon=True,
        )
        with self._connections_lock:
            self._handler_threads.add(thread)
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        connection = request
        try:
            request.settimeout(_HTTPHandler.timeout)
            if self.ssl_context is not None:
                connection = self.ssl_context.wrap_socket(
                    request, server_side=True, do_handshake_on_connect=False
                )
            with self._connections_lock:
                self._connections.add(connection)
            if isinstance(connection, ssl.SSLSocket):
                try:
                    connection.do_handshake()  # registered first: stop() can interrupt a stalled one
                except (ssl.SSLError, OSError) as exc:
                    if not self._closing:
                        self.receiver._record_error(f"http: TLS handshake failed: {exc}")
                    return
            self.finish_request(connection, client_address)
        except Exception as exc:
            if not self._closing:
                self.receiver._record_error(f"http: connection failed: {exc!r}")
        finally:
            with self._connections_lock:
                self._connections.discard(connection)
                self._handler_threads.discard(threading.current_thread())
            self.shutdown_request(connection)
            self._slots.release()

    def close_connections(self, timeout: float) -> None:
        """Close idle keep-alive connections and wait (bounded) for their threads."""
        deadline = time.monotonic() + timeout
        self._closing = True
        with self._connections_lock:
            connections = list(self._connections)
            threads = list(self._handler_threads)
        for connection in connections:
            # The plain socket's shutdown: it wakes a thread blocked reading, even under TLS.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(connection, socket.SHUT_RDWR)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class _HTTPHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30.0
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_POST(self) -> None:
        receiver = self.server.receiver
        path = self.path.split("?", 1)[0]
        if path != _TRACES_PATH:
            self._refuse(HTTPStatus.NOT_FOUND, f"http: POST {self.path}: only {_TRACES_PATH} is served")
            return
        content_type = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if content_type != _PROTOBUF:
            self._refuse(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"http: Content-Type {content_type!r} (only {_PROTOBUF})"
            )
            return
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.strip().isdigit():
            self._refuse(HTTPStatus.LENGTH_REQUIRED, "http: no valid Content-Length")
            return
        length = int(length_text)
        if length > receiver.max_body_bytes:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"http: body of {length} bytes is too large")
            return
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            receiver._record_error(f"http: body cut short ({len(body)} of {length} bytes)")
            return
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower() or None
        try:
            data = _decompress(body, encoding, receiver.max_body_bytes)
        except _TooLarge as exc:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"http: {exc}")
            return
        except ValueError as exc:
            self._refuse(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"http: {exc}")
            return
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        try:
            message = ExportTraceServiceRequest.FromString(data)
        except Exception as exc:  # google.protobuf.message.DecodeError, and nothing else expected
            self._refuse(HTTPStatus.BAD_REQUEST, f"http: body is not an ExportTraceServiceRequest: {exc}")
            return
        fault = receiver._begin_attempt()
        if not receiver._hold_back(fault):
            self.close_connection = True  # stopped meanwhile: no answer, as from a collector gone
            return
        if fault is not None and fault.http_failure:
            self._reply_fault(fault)
            return
        receiver._record(
            protocol="http",
            path=path,
            headers={key.lower(): value for key, value in self.headers.items()},
            content_encoding=encoding,
            body_size=length,
            client_common_name=self._client_common_name(),
            message=message,
        )
        if fault is None:
            self._reply(HTTPStatus.OK, ExportTraceServiceResponse().SerializeToString())
        else:
            status = HTTPStatus.OK if fault.http_status is None else fault.http_status
            self._reply(status, fault._response().SerializeToString(), headers=_retry_after(fault))

    def _client_common_name(self) -> str | None:
        if not isinstance(self.connection, ssl.SSLSocket):
            return None
        certificate = self.connection.getpeercert()
        if not certificate:
            return None
        for rdn in certificate.get("subject", ()):
            for pair in rdn:
                if isinstance(pair, tuple) and len(pair) == 2 and pair[0] == "commonName":
                    return str(pair[1])
        return None

    def _refuse(self, status: HTTPStatus, error: str) -> None:
        self.server.receiver._record_error(error)
        self.close_connection = True
        self._reply(status, error.encode("utf-8"), "text/plain; charset=utf-8")

    def _reply_fault(self, fault: Fault) -> None:
        """Answer with the fault's error status and a ``google.rpc.Status`` body (OTLP/HTTP)."""
        from google.rpc import code_pb2, status_pb2  # type: ignore[import-untyped, unused-ignore]

        assert fault.http_status is not None
        code_name = fault.grpc_code or _HTTP_TO_GRPC_CODE.get(fault.http_status, "UNKNOWN")
        status = status_pb2.Status(code=code_pb2.Code.Value(code_name), message=fault.message)
        self._reply(fault.http_status, status.SerializeToString(), headers=_retry_after(fault))

    def _reply(
        self,
        status: int,
        body: bytes,
        content_type: str = _PROTOBUF,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


def _retry_after(fault: Fault) -> list[tuple[str, str]]:
    """The ``Retry-After`` header of a fault's answer: delta-seconds, a whole number."""
    if fault.retry_after is None:
        return []
    return [("Retry-After", str(math.ceil(fault.retry_after)))]


# ---------------------------------------------------------------------- decoding


class _TooLarge(ValueError):
    pass


def _decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    if encoding in (None, "identity"):
        return body
    if encoding == "gzip":
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        decompressor = zlib.decompressobj()
    else:
        raise ValueError(f"Content-Encoding {encoding!r} is not supported (gzip, deflate)")
    try:
        data = decompressor.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ValueError(f"body is not valid {encoding}: {exc}") from None
    if len(data) > limit:
        raise _TooLarge(f"body is larger than {limit} bytes once decompressed")
    if not decompressor.eof:
        raise ValueError(f"body is not complete {encoding} data")
    return data


def _flatten(message: ExportTraceServiceRequest, protocol: str) -> Iterable[ReceivedSpan]:
    for resource_spans in message.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            for span in scope_spans.spans:
                yield ReceivedSpan(
                    name=span.name,
                    kind=_KINDS.get(span.kind),
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex() or None,
                    attributes=_attributes(span.attributes),
                    status_code=_STATUSES.get(span.status.code, StatusCode.UNSET),
                    status_message=span.status.message,
                    start_time_unix_nano=span.start_time_unix_nano,
                    end_time_unix_nano=span.end_time_unix_nano,
                    trace_state=span.trace_state,
                    flags=span.flags,
                    events=tuple(
                        ReceivedEvent(event.name, event.time_unix_nano, _attributes(event.attributes))
                        for event in span.events
                    ),
                    links=tuple(
                        ReceivedLink(link.trace_id.hex(), link.span_id.hex(), _attributes(link.attributes))
                        for link in span.links
                    ),
                    resource=resource,
                    scope_name=scope.name,
                    scope_version=scope.version,
                    protocol=protocol,
                )


def _attributes(pairs: Sequence[KeyValue]) -> dict[str, AttributeValue]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: AnyValue) -> AttributeValue:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return tuple(_value(item) for item in value.array_value.values)
    if which == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, which)


def _read(path: str | None) -> bytes:
    if path is None:
        raise ValueError("missing path")
    with open(path, "rb") as file:
        return file.read()
