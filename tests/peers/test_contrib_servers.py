"""tracekit steps aside for an application a contrib instrumentor traces: one SERVER span per request.

The application instruments itself (``instrument_app``) after ``configure()``, as one
started with ``tracekit run`` would; the contrib span reaches tracekit's exporter through the
global provider ``configure()`` installed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.trace import SpanKind

from integrations.servercheck import uvicorn_server, wait_for_spans, wsgi_server
from tracekit import _compat
from tracekit.testing import SpanRecorder, capture_spans

FLASK_SCOPE = "opentelemetry.instrumentation.flask"
FASTAPI_SCOPE = "opentelemetry.instrumentation.fastapi"


def _settled(recorder: SpanRecorder, count: int) -> list[Any]:
    """The spans once ``count`` have arrived and no other followed within 0.3 s."""
    wait_for_spans(recorder, count)
    time.sleep(0.3)
    return list(recorder.spans)


def _flask_app() -> Any:
    from flask import Flask

    app = Flask("orders")

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return app


def _fastapi_app() -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return app


@pytest.fixture
def flask_instrumentor() -> Iterator[Any]:
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    instrumented: list[Any] = []

    def instrument(app: Any) -> None:
        FlaskInstrumentor.instrument_app(app)
        instrumented.append(app)

    yield instrument
    for app in instrumented:
        FlaskInstrumentor.uninstrument_app(app)


def test_flask_instrumented_by_contrib_after_configure_has_the_contrib_span_only(
    flask_instrumentor: Any,
) -> None:
    with capture_spans(instrument=["flask"]) as recorder:
        app = _flask_app()
        flask_instrumentor(app)
        with wsgi_server(app) as server:
            assert httpx.get(server.url("/items/3")).json() == {"id": 3}
            spans = _settled(recorder, 1)
    assert [(s.name, s.kind, s.instrumentation_scope.name) for s in spans] == [
        ("GET /items/<int:item_id>", SpanKind.SERVER, FLASK_SCOPE)
    ]


def test_flask_without_the_contrib_instrumentor_has_tracekits_span() -> None:
    # The control: the same application, not instrumented by contrib.
    with capture_spans(instrument=["flask"]) as recorder, wsgi_server(_flask_app()) as server:
        httpx.get(server.url("/items/3"))
        spans = _settled(recorder, 1)
    assert [(s.name, s.kind, s.instrumentation_scope.name) for s in spans] == [
        ("GET /items/<int:item_id>", SpanKind.SERVER, "tracekit")
    ]


@pytest.mark.parametrize(
    "server_integrations",
    [["fastapi", "starlette"], ["fastapi", "starlette", "uvicorn"]],
    ids=["app", "server"],
)
def test_fastapi_instrumented_by_contrib_after_configure_has_the_contrib_spans_only(
    server_integrations: list[str],
) -> None:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    with capture_spans(instrument=server_integrations) as recorder:
        app = _fastapi_app()
        FastAPIInstrumentor.instrument_app(app)
        try:
            with uvicorn_server(app) as server:
                assert httpx.get(server.url("/items/5")).json() == {"id": 5}
                # The contrib SERVER span and its two ASGI send spans.
                spans = _settled(recorder, 3)
        finally:
            FastAPIInstrumentor.uninstrument_app(app)
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    assert [(s.name, s.instrumentation_scope.name) for s in servers] == [
        ("GET /items/{item_id}", FASTAPI_SCOPE)
    ]
    assert {s.instrumentation_scope.name for s in spans} == {FASTAPI_SCOPE}


def test_the_contrib_mark_is_what_compat_reads(flask_instrumentor: Any) -> None:
    # Pins the private attribute tracekit._compat.instrumented_by_contrib reads.
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    flask_app, fastapi_app = _flask_app(), _fastapi_app()
    assert not _compat.instrumented_by_contrib(flask_app)
    assert not _compat.instrumented_by_contrib(fastapi_app)
    flask_instrumentor(flask_app)
    FastAPIInstrumentor.instrument_app(fastapi_app)
    assert _compat.instrumented_by_contrib(flask_app)
    assert _compat.instrumented_by_contrib(fastapi_app)
    FlaskInstrumentor.uninstrument_app(flask_app)
    FastAPIInstrumentor.uninstrument_app(fastapi_app)
    assert not _compat.instrumented_by_contrib(flask_app)
    assert not _compat.instrumented_by_contrib(fastapi_app)
