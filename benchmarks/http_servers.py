"""HTTP servers in process: one GET to a FastAPI app over ASGI and to a Flask app over WSGI.

No network: a small driver calls the application with a scope (ASGI) or an environ (WSGI)
and collects the response, as a server would. Instrumentation is applied per application
object, so each variant gets its own app: the peer's with
``FastAPIInstrumentor.instrument_app`` / ``FlaskInstrumentor().instrument_app`` (and, as
reference rows, the generic ASGI and WSGI middlewares), all with a separate SDK provider
and OpenTelemetry's default propagator.
tracekit's server integrations are switched on with ``tracekit.instrument()`` before its app
is built and off after its round; until they exist its row says "not available".
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any

from benchmarks._common import (
    Pipeline,
    counted,
    global_propagator,
    opentelemetry_propagator,
    peer_provider,
    tracekit_configured,
    tracekit_integration,
)
from benchmarks._harness import Batch, Benchmark, Role, Scale, Session, Unavailable, Variant

__all__ = [
    "NO_NATIVE_TELEMETRY",
    "ASGIExchange",
    "asgi_scope",
    "benchmarks",
    "peer_propagation",
    "tracekit_server",
]

App = Any

#: OpenTelemetry's ASGI middleware makes, besides the SERVER span, one INTERNAL span per ASGI
#: ``send`` message (response start and body) unless told to exclude them.
_PEER_ASGI_SPANS = 3

# ----------------------------------------------------------------------------- ASGI


def asgi_scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/items/42",
        "raw_path": b"/items/42",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"benchmarks"), (b"accept", b"*/*")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


class ASGIExchange:
    """One request's receive and send channels."""

    __slots__ = ("requested", "status")

    def __init__(self) -> None:
        self.requested = False
        self.status = 0

    async def receive(self) -> dict[str, Any]:
        if not self.requested:
            self.requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]


def _asgi_batch(app: App) -> Batch:
    loop = asyncio.new_event_loop()
    base = asgi_scope()

    async def requests(n: int) -> None:
        for _ in range(n):
            exchange = ASGIExchange()
            await app(dict(base), exchange.receive, exchange.send)
            if exchange.status != 200:
                raise RuntimeError(f"unexpected status {exchange.status}")

    def batch(n: int) -> None:
        loop.run_until_complete(requests(n))

    batch.close = loop.close  # type: ignore[attr-defined]
    return batch


#: FastAPI's own telemetry switches itself on as soon as a global tracer provider exists
#: (tracekit's, here): every app is built with it off unless a variant measures it.
NO_NATIVE_TELEMETRY = {"tracing": False, "metrics": False, "logs": False}


def _fastapi_app(**telemetry: Any) -> App:
    from fastapi import FastAPI

    try:
        app = FastAPI(telemetry={**NO_NATIVE_TELEMETRY, **telemetry})  # type: ignore[typeddict-item, arg-type, unused-ignore]
    except TypeError as exc:  # a FastAPI without native telemetry
        if telemetry:
            raise Unavailable(f"this FastAPI has no native telemetry: {exc}") from exc
        app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "name": "widget"}

    return app


# ----------------------------------------------------------------------------- WSGI


def _wsgi_environ() -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/items/42",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "benchmarks",
        "HTTP_ACCEPT": "*/*",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def _wsgi_batch(app: App) -> Batch:
    base = _wsgi_environ()
    statuses: list[str] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        statuses.append(status)
        return lambda data: None

    def batch(n: int) -> None:
        for _ in range(n):
            environ = dict(base)
            environ["wsgi.input"] = io.BytesIO(b"")
            body: Iterable[bytes] = app(environ, start_response)
            try:
                for _chunk in body:
                    pass
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
            status = statuses.pop()
            if not status.startswith("200"):
                raise RuntimeError(f"unexpected status {status}")

    return batch


def _flask_app() -> App:
    from flask import Flask

    app = Flask("benchmarks")

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "name": "widget"}

    return app


# ----------------------------------------------------------------------------- variants


def _app_session(
    make_app: Callable[[], App],
    make_batch: Callable[[App], Batch],
    switch: Callable[[], AbstractContextManager[object]] | None = None,
    pipeline: Pipeline | None = None,
    spans: int = 1,
) -> Session:
    @contextmanager
    def session() -> Iterator[Batch]:
        with ExitStack() as stack:
            if switch is not None:
                stack.enter_context(switch())
            batch = make_batch(make_app())
            close = getattr(batch, "close", None)
            if close is not None:
                stack.callback(close)
            if pipeline is None:
                yield batch
            else:
                yield stack.enter_context(counted(batch, pipeline, spans))

    return session


def peer_propagation() -> AbstractContextManager[None]:
    """OpenTelemetry's default propagator for a peer's rounds (tracekit's is the global one)."""
    return global_propagator(opentelemetry_propagator())


def tracekit_server(names: Sequence[str]) -> Callable[[], AbstractContextManager[object]]:
    """The first of ``names`` that tracekit knows as an integration, switched on."""

    @contextmanager
    def switch() -> Iterator[None]:
        with ExitStack() as stack:
            for name in names:
                try:
                    stack.enter_context(tracekit_integration(name))
                    break
                except Unavailable:
                    continue
            else:
                raise Unavailable(f"tracekit has no {' / '.join(names)} integration yet (issue 5)")
            yield

    return switch


@contextmanager
def _fastapi() -> Iterator[Sequence[Variant]]:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    with tracekit_configured() as tracekit_pipeline, peer_provider("batch") as (provider, pipeline):

        def contrib(**options: Any) -> Callable[[], App]:
            def make() -> App:
                app = _fastapi_app()
                FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, **options)
                return app

            return make

        def native(**options: Any) -> Callable[[], App]:
            return lambda: _fastapi_app(tracing=True, tracer_provider=provider, **options)

        def middleware() -> App:
            return OpenTelemetryMiddleware(_fastapi_app(), tracer_provider=provider)

        def peer(label: str, role: Role, make: Callable[[], App], spans: int) -> Variant:
            return Variant(label, role, _app_session(make, _asgi_batch, peer_propagation, pipeline, spans))

        tracekit_switch = tracekit_server(("fastapi", "starlette", "asgi"))
        yield [
            Variant("bare", "bare", _app_session(_fastapi_app, _asgi_batch)),
            Variant(
                "tracekit",
                "tracekit",
                _app_session(_fastapi_app, _asgi_batch, tracekit_switch, tracekit_pipeline),
            ),
            peer("opentelemetry-instrumentation-fastapi", "peer", contrib(), _PEER_ASGI_SPANS),
            peer(
                'opentelemetry-instrumentation-fastapi, `exclude_spans=["receive", "send"]`',
                "reference",
                contrib(exclude_spans=["receive", "send"]),
                1,
            ),
            peer("opentelemetry-instrumentation-asgi middleware", "reference", middleware, _PEER_ASGI_SPANS),
            peer("FastAPI's native telemetry", "reference", native(), 4),
            peer(
                "FastAPI's native telemetry, `operation_spans=False`",
                "reference",
                native(operation_spans=False),
                1,
            ),
        ]


@contextmanager
def _flask() -> Iterator[Sequence[Variant]]:
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    with tracekit_configured() as tracekit_pipeline, peer_provider("batch") as (provider, pipeline):

        def peer_app() -> App:
            app = _flask_app()
            FlaskInstrumentor().instrument_app(app, tracer_provider=provider)  # type: ignore[no-untyped-call]
            return app

        def middleware_app() -> App:
            return OpenTelemetryMiddleware(_flask_app(), tracer_provider=provider)

        yield [
            Variant("bare", "bare", _app_session(_flask_app, _wsgi_batch)),
            Variant(
                "tracekit",
                "tracekit",
                _app_session(_flask_app, _wsgi_batch, tracekit_server(("flask", "wsgi")), tracekit_pipeline),
            ),
            Variant(
                "opentelemetry-instrumentation-flask",
                "peer",
                _app_session(peer_app, _wsgi_batch, peer_propagation, pipeline),
            ),
            Variant(
                "opentelemetry-instrumentation-wsgi middleware",
                "reference",
                _app_session(middleware_app, _wsgi_batch, peer_propagation, pipeline),
            ),
        ]


def benchmarks(scale: Scale) -> list[Benchmark]:
    switching = (
        "in process; one application object per variant, instrumented when it is built "
        "(`instrument_app`, a middleware around it, or `tracekit.instrument()` before it)"
    )
    return [
        Benchmark(
            name="fastapi-request",
            family="http-servers",
            title="FastAPI request over ASGI",
            description="GET `/items/42` routed to an `async def` endpoint returning a small dict as JSON, "
            "driven in process through the ASGI interface. The peer makes, as it does by default, a SERVER "
            "span and an INTERNAL span for each of the two ASGI `send` messages; a reference row turns "
            "those two off. FastAPI's own telemetry (`FastAPI(telemetry=...)`), which turns itself on "
            "whenever a global tracer provider is installed, is off in every app but the two reference rows "
            "that measure it (by default it makes a SERVER span and three INTERNAL spans: dependencies, "
            "endpoint, serialization).",
            switching=switching,
            setup=_fastapi,
            rounds=scale.rounds(15),
            iterations=scale.iterations(450),
            warmup=20,
        ),
        Benchmark(
            name="flask-request",
            family="http-servers",
            title="Flask request over WSGI",
            description="GET `/items/42` routed to a view returning a small dict as JSON, driven in process "
            "through the WSGI interface; one SERVER span per request on the instrumented sides.",
            switching=switching,
            setup=_flask,
            rounds=scale.rounds(15),
            iterations=scale.iterations(700),
            warmup=20,
        ),
    ]
