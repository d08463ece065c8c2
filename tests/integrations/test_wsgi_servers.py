"""WSGI server spans: Flask under werkzeug's server, a Django project and a raw WSGI app under wsgiref."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.trace import StatusCode
from servercheck import (
    SERVER_INTEGRATIONS,
    check_exception_event,
    check_server_span,
    configure_django,
    in_start_order,
    traceparent_of,
    wait_for_spans,
    wsgi_server,
)

from tracekit.integrations.wsgi import TracekitMiddleware
from tracekit.testing import SpanRecorder, capture_spans

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
UA = f"python-httpx/{httpx.__version__}"


@pytest.fixture
def recorder() -> Iterator[SpanRecorder]:
    with capture_spans(instrument=SERVER_INTEGRATIONS) as recorder:
        yield recorder


def flask_app() -> Any:
    from flask import Flask, Response, abort, request

    app = Flask("tests")
    app.config["chunks_sent"] = []

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        return {"id": item_id, "traceparent": request.headers.get("traceparent")}

    @app.get("/unavailable")
    def unavailable() -> Any:
        abort(503)

    @app.get("/teapot")
    def teapot() -> Any:
        abort(418)

    @app.get("/crash")
    def crash() -> Any:
        raise LookupError("crash")

    @app.get("/stream")
    def stream() -> Any:
        def body() -> Iterator[str]:
            for number in range(5):
                time.sleep(0.02)
                app.config["chunks_sent"].append(time.time_ns())
                yield f"chunk-{number}\n"

        return Response(body())

    @app.get("/health")
    def health() -> Any:
        return "ok"

    @app.get("/reply-headers")
    def reply_headers() -> Any:
        response = Response("ok")
        response.headers.add("X-Reply", "one")
        response.headers.add("X-Reply", "two")
        response.headers.add("Set-Cookie", "session=secret")
        return response

    return app


@pytest.fixture(scope="session")
def django_application() -> Any:
    configure_django()
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def raw_wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/crash":
        raise OSError("crash")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"raw:", environ["PATH_INFO"].encode()]


# --------------------------------------------------------------------------- Flask


def test_flask_route_and_continued_trace(recorder: SpanRecorder) -> None:
    with wsgi_server(flask_app()) as server:
        response = httpx.get(
            server.url("/items/7?sig=abc&page=1"), headers={"traceparent": f"00-{TRACE}-{PARENT}-01"}
        )
        (span,) = wait_for_spans(recorder, 1)
    assert response.json() == {"id": 7, "traceparent": f"00-{TRACE}-{PARENT}-01"}
    check_server_span(
        span,
        port=server.port,
        path="/items/7",
        route="/items/<int:item_id>",
        query="sig=REDACTED&page=1",
        user_agent=UA,
    )
    assert span.parent is not None
    assert (f"{span.parent.trace_id:032x}", f"{span.parent.span_id:016x}") == (TRACE, PARENT)


def test_flask_statuses_and_exceptions(recorder: SpanRecorder) -> None:
    with wsgi_server(flask_app()) as server:
        assert httpx.get(server.url("/nowhere")).status_code == 404
        assert httpx.get(server.url("/teapot")).status_code == 418
        assert httpx.get(server.url("/unavailable")).status_code == 503
        assert httpx.get(server.url("/crash")).status_code == 500
        wait_for_spans(recorder, 4)
    missing, teapot, unavailable, crash = in_start_order(recorder)
    check_server_span(missing, port=server.port, path="/nowhere", status=404, user_agent=UA)
    check_server_span(teapot, port=server.port, path="/teapot", route="/teapot", status=418, user_agent=UA)
    check_server_span(
        unavailable,
        port=server.port,
        path="/unavailable",
        route="/unavailable",
        status=503,
        error_type="503",
        user_agent=UA,
    )
    check_server_span(
        crash,
        port=server.port,
        path="/crash",
        route="/crash",
        status=500,
        error_type="LookupError",
        user_agent=UA,
    )
    check_exception_event(crash, "LookupError", "crash")


def test_flask_streamed_response_is_covered_to_its_last_chunk(recorder: SpanRecorder) -> None:
    app = flask_app()
    with wsgi_server(app) as server, httpx.stream("GET", server.url("/stream")) as response:
        body = b"".join(response.iter_bytes())
    assert body == b"".join(f"chunk-{n}\n".encode() for n in range(5))
    (span,) = wait_for_spans(recorder, 1)
    check_server_span(span, port=server.port, path="/stream", route="/stream", user_agent=UA)
    assert span.end_time is not None
    assert span.end_time >= app.config["chunks_sent"][-1]


def test_flask_health_checks_header_capture_and_traceresponse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "x-tag,Authorization")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", "X-Reply,set-cookie")
    monkeypatch.setenv("TRACEKIT_TRACERESPONSE", "true")
    with capture_spans(instrument=SERVER_INTEGRATIONS) as recorder, wsgi_server(flask_app()) as server:
        health = httpx.get(server.url("/health"))
        response = httpx.get(server.url("/reply-headers"), headers={"X-Tag": "t", "Authorization": "Basic x"})
        (span,) = wait_for_spans(recorder, 1)
    assert "traceresponse" not in health.headers
    assert response.headers["traceresponse"] == traceparent_of(span)
    check_server_span(
        span,
        port=server.port,
        path="/reply-headers",
        route="/reply-headers",
        user_agent=UA,
        extra={
            "http.request.header.x-tag": ("t",),
            "http.request.header.authorization": ("[REDACTED]",),
            "http.response.header.x-reply": ("one", "two"),
            "http.response.header.set-cookie": ("[REDACTED]",),
        },
    )


def test_flask_excluded_urls_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "/items/")
    with capture_spans(instrument=SERVER_INTEGRATIONS) as recorder, wsgi_server(flask_app()) as server:
        httpx.get(server.url("/items/1"))
        httpx.get(server.url("/health"))
        (span,) = wait_for_spans(recorder, 1)
    check_server_span(span, port=server.port, path="/health", route="/health", user_agent=UA)


@pytest.mark.parametrize(
    ("propagators", "headers"),
    [
        (["b3"], {"b3": f"{TRACE}-{PARENT}-1"}),
        (["b3"], {"X-B3-TraceId": TRACE, "X-B3-SpanId": PARENT, "X-B3-Sampled": "1"}),
        (["tracecontext", "baggage", "b3multi"], {"b3": f"{TRACE}-{PARENT}-1"}),
    ],
    ids=["b3-reads-single", "b3-reads-multi", "b3multi-reads-single"],
)
def test_flask_b3_headers_are_continued_in_either_encoding(
    propagators: list[str], headers: dict[str, str]
) -> None:
    with (
        capture_spans(instrument=SERVER_INTEGRATIONS, propagators=propagators) as recorder,
        wsgi_server(flask_app()) as server,
    ):
        httpx.get(server.url("/items/3"), headers=headers)
        (span,) = wait_for_spans(recorder, 1)
    check_server_span(span, port=server.port, path="/items/3", route="/items/<int:item_id>", user_agent=UA)
    assert span.parent is not None
    assert (f"{span.parent.trace_id:032x}", f"{span.parent.span_id:016x}") == (TRACE, PARENT)


def test_flask_inside_the_wsgi_middleware_is_one_span(recorder: SpanRecorder) -> None:
    app = flask_app()
    app.wsgi_app = TracekitMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    with wsgi_server(TracekitMiddleware(app)) as server:
        httpx.get(server.url("/items/2"))
        (span,) = wait_for_spans(recorder, 1)
    check_server_span(span, port=server.port, path="/items/2", route="/items/<int:item_id>", user_agent=UA)


# --------------------------------------------------------------------------- Django


def test_django_routes_statuses_and_exceptions(recorder: SpanRecorder, django_application: Any) -> None:
    with wsgi_server(django_application, kind="wsgiref") as server:
        response = httpx.get(server.url("/items/5/"), headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
        assert response.json() == {"id": 5, "traceparent": f"00-{TRACE}-{PARENT}-01"}
        assert httpx.get(server.url("/api/v1/orders/8/")).status_code == 200
        assert httpx.get(server.url("/no/such/page/")).status_code == 404
        assert httpx.get(server.url("/unavailable/")).status_code == 503
        assert httpx.get(server.url("/crash/")).status_code == 500
        assert httpx.get(server.url("/health")).status_code == 200
        wait_for_spans(recorder, 5)
        time.sleep(0.1)
    item, order, missing, unavailable, crash = in_start_order(recorder)
    check_server_span(item, port=server.port, path="/items/5/", route="/items/<int:item_id>/", user_agent=UA)
    assert item.parent is not None
    assert (f"{item.parent.trace_id:032x}", f"{item.parent.span_id:016x}") == (TRACE, PARENT)
    check_server_span(
        order,
        port=server.port,
        path="/api/v1/orders/8/",
        route="/api/v1/orders/<int:order_id>/",
        user_agent=UA,
    )
    check_server_span(missing, port=server.port, path="/no/such/page/", status=404, user_agent=UA)
    check_server_span(
        unavailable,
        port=server.port,
        path="/unavailable/",
        route="/unavailable/",
        status=503,
        error_type="503",
        user_agent=UA,
    )
    check_server_span(
        crash,
        port=server.port,
        path="/crash/",
        route="/crash/",
        status=500,
        error_type="ZeroDivisionError",
        user_agent=UA,
    )
    check_exception_event(crash, "ZeroDivisionError", "crash")


# --------------------------------------------------------------------------- the WSGI middleware


def test_raw_wsgi_app_in_the_middleware(recorder: SpanRecorder) -> None:
    with wsgi_server(TracekitMiddleware(raw_wsgi_app), kind="wsgiref") as server:
        assert httpx.put(server.url("/things/1?x=1"), content=b"data").text == "raw:/things/1"
        assert httpx.get(server.url("/crash")).status_code == 500
        wait_for_spans(recorder, 2)
    things, crash = in_start_order(recorder)
    check_server_span(things, port=server.port, path="/things/1", method="PUT", query="x=1", user_agent=UA)
    check_server_span(
        crash, port=server.port, path="/crash", status=None, error_type="OSError", user_agent=UA
    )
    check_exception_event(crash, "OSError", "crash")


def test_an_exception_escapes_the_middleware_unchanged(recorder: SpanRecorder) -> None:
    failure = ValueError("kept")

    def app(environ: Any, start_response: Any) -> Any:
        raise failure

    with pytest.raises(ValueError, match="kept") as raised:
        TracekitMiddleware(app)({"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}, lambda *args: None)
    assert raised.value is failure
    (span,) = recorder.spans
    assert span.name == "GET"
    assert span.status.status_code is StatusCode.ERROR


def test_an_exception_while_iterating_the_body_is_recorded(recorder: SpanRecorder) -> None:
    def app(environ: Any, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"first"
        raise RuntimeError("mid-body")

    body = TracekitMiddleware(app)({"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}, lambda *args: None)
    iterator = iter(body)
    assert next(iterator) == b"first"
    with pytest.raises(RuntimeError, match="mid-body"):
        next(iterator)
    assert recorder.spans == []  # the span ends when the server closes the body
    body.close()  # type: ignore[attr-defined]
    body.close()  # type: ignore[attr-defined]
    (span,) = recorder.spans
    assert dict(span.attributes or {})["error.type"] == "RuntimeError"
    assert dict(span.attributes or {})["http.response.status_code"] == 200


def _send(port: int, path: str, headers: list[tuple[str, str]]) -> int:
    """A request with header fields in order, repeats kept (httpx would merge them)."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("GET", path)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.mark.parametrize("kind", ["werkzeug", "wsgiref"])
def test_repeated_header_fields_under_wsgi(recorder: SpanRecorder, kind: str) -> None:
    # WSGI servers join repeated fields with commas: two traceparent fields then make an
    # invalid value (the trace restarts), tracestate fields are combined as the spec says.
    with wsgi_server(TracekitMiddleware(raw_wsgi_app), kind=kind) as server:
        twice = [("traceparent", f"00-{TRACE}-{PARENT}-01"), ("traceparent", f"00-{TRACE}-{PARENT}-01")]
        assert _send(server.port, "/twice", twice) == 200
        combined = [
            ("traceparent", f"00-{TRACE}-{PARENT}-01"),
            ("tracestate", "a=1"),
            ("tracestate", "b=2, c=3"),
        ]
        assert _send(server.port, "/combined", combined) == 200
        wait_for_spans(recorder, 2)
    restarted, continued = in_start_order(recorder)
    assert restarted.parent is None
    assert f"{restarted.context.trace_id:032x}" != TRACE
    assert continued.parent is not None
    assert f"{continued.context.trace_id:032x}" == TRACE
    assert continued.context.trace_state.to_header() == "a=1,b=2,c=3"
