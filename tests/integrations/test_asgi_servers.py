"""ASGI server spans: Starlette, FastAPI and a raw ASGI app under uvicorn and hypercorn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.trace import SpanKind, StatusCode
from servercheck import (
    SERVER_INTEGRATIONS,
    check_exception_event,
    check_server_span,
    configure_django,
    hypercorn_server,
    in_start_order,
    only,
    traceparent_of,
    uvicorn_server,
    wait_for_spans,
)

import tracekit
from tracekit import _state
from tracekit.integrations.asgi import TracekitMiddleware
from tracekit.testing import SpanRecorder, capture_spans

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
UA = f"python-httpx/{httpx.__version__}"


@pytest.fixture
def recorder() -> Iterator[SpanRecorder]:
    """tracekit with its server integrations on (client integrations off: tests send headers by hand)."""
    with capture_spans(instrument=SERVER_INTEGRATIONS) as recorder:
        yield recorder


# --------------------------------------------------------------------------- applications


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
    from starlette.routing import Mount, Route, WebSocketRoute
    from starlette.websockets import WebSocket

    async def item(request: Request) -> Response:
        return JSONResponse({"id": request.path_params["item_id"]})

    async def status(request: Request) -> Response:
        return PlainTextResponse("status", status_code=request.path_params["code"])

    async def boom(request: Request) -> Response:
        raise RuntimeError("boom")

    async def stream(request: Request) -> Response:
        request.app.state.chunks_sent = []

        async def body() -> Any:
            for number in range(5):
                await asyncio.sleep(0.02)
                request.app.state.chunks_sent.append(time.time_ns())
                yield f"chunk-{number}\n".encode()

        return StreamingResponse(body())

    async def forever(request: Request) -> Response:
        async def body() -> Any:
            while True:
                yield b"x" * 1024
                await asyncio.sleep(0.01)

        return StreamingResponse(body())

    async def ok(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def reply_headers(request: Request) -> Response:
        response = PlainTextResponse("ok")
        response.headers.append("X-Reply", "one")
        response.headers.append("X-Reply", "two")
        response.headers.append("Set-Cookie", "session=secret")
        return response

    async def chat(websocket: WebSocket) -> None:
        await websocket.accept()
        message = await websocket.receive_text()
        await websocket.send_text(message.upper())
        message = await websocket.receive_text()
        await websocket.send_text(message.upper())
        await websocket.close()

    async def refuse(websocket: WebSocket) -> None:
        await websocket.close()

    return Starlette(
        routes=[
            Route("/items/{item_id:int}", item),
            Route("/status/{code:int}", status),
            Route("/boom", boom),
            Route("/stream", stream),
            Route("/forever", forever),
            Route("/health", ok),
            Route("/healthz", ok),
            Route("/health/deep", ok),
            Route("/metrics", ok),
            Route("/reply-headers", reply_headers),
            Route("/only-post", ok, methods=["POST"]),
            Mount("/api", routes=[Mount("/v2", routes=[Route("/users/{user_id}", ok)])]),
            WebSocketRoute("/ws/{room}", chat),
            WebSocketRoute("/refuse", refuse),
        ]
    )


def fastapi_app(downstream: str | None = None) -> Any:
    from fastapi import APIRouter, FastAPI, HTTPException
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    app = FastAPI()  # FastAPI's own telemetry left on: tracekit's span must be the only one
    router = APIRouter(prefix="/v1")

    @router.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, int]:
        return {"id": order_id}

    app.include_router(router)

    @app.get("/checkout/{cart_id}")
    async def checkout(cart_id: str) -> dict[str, str]:
        return {"cart": cart_id}

    @app.post("/items")
    async def create() -> dict[str, str]:
        return {"created": "yes"}

    @app.get("/unavailable")
    async def unavailable() -> None:
        raise HTTPException(status_code=503)

    @app.get("/missing")
    async def missing() -> None:
        raise HTTPException(status_code=404)

    @app.get("/crash")
    async def crash() -> None:
        raise ValueError("crash")

    @app.get("/numbers/{number}")
    async def number(number: int) -> dict[str, int]:
        return {"number": number}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/call")
    async def call() -> Any:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{downstream}/echo")
        return response.json()

    async def legacy(request: Any) -> PlainTextResponse:
        return PlainTextResponse("legacy")

    app.mount("/legacy", Starlette(routes=[Route("/pages/{page:int}", legacy)]))
    return app


async def raw_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A plain ASGI application: answers every path, echoes the request headers it got."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/crash":
        raise KeyError("crash")
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    headers = {name.decode(): value.decode() for name, value in scope["headers"]}
    body = json.dumps({"path": scope["path"], "headers": headers}).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------- Starlette under uvicorn


def test_starlette_route_template_and_continued_trace(recorder: SpanRecorder) -> None:
    with uvicorn_server(starlette_app()) as server:
        response = httpx.get(
            server.url("/items/42?page=2&token=secret"),
            headers={"traceparent": f"00-{TRACE}-{PARENT}-01", "tracestate": "congo=t61rcWkgMzE"},
        )
    assert response.json() == {"id": 42}
    (span,) = recorder.spans
    check_server_span(
        span,
        port=server.port,
        path="/items/42",
        route="/items/{item_id}",
        query="page=2&token=REDACTED",
        user_agent=UA,
    )
    assert span.parent is not None
    assert span.parent.is_remote
    assert (f"{span.parent.trace_id:032x}", f"{span.parent.span_id:016x}") == (TRACE, PARENT)
    assert f"{span.context.trace_id:032x}" == TRACE
    assert span.context.trace_state.to_header() == "congo=t61rcWkgMzE"


def test_nested_mounts_give_the_full_template(recorder: SpanRecorder) -> None:
    with uvicorn_server(starlette_app()) as server:
        assert httpx.get(server.url("/api/v2/users/ada")).status_code == 200
    (span,) = recorder.spans
    check_server_span(
        span, port=server.port, path="/api/v2/users/ada", route="/api/v2/users/{user_id}", user_agent=UA
    )
    assert span.parent is None


def test_no_route_is_named_by_the_method_only(recorder: SpanRecorder) -> None:
    with uvicorn_server(starlette_app()) as server:
        assert httpx.get(server.url("/nowhere/123")).status_code == 404
        assert httpx.get(server.url("/only-post")).status_code == 405
    missing, not_allowed = in_start_order(recorder)
    check_server_span(missing, port=server.port, path="/nowhere/123", status=404, user_agent=UA)
    # 405: the router matched the path (a partial match) and says which route it is
    check_server_span(
        not_allowed, port=server.port, path="/only-post", route="/only-post", status=405, user_agent=UA
    )


@pytest.mark.parametrize("code", [500, 503])
def test_5xx_responses_are_errors(recorder: SpanRecorder, code: int) -> None:
    with uvicorn_server(starlette_app()) as server:
        assert httpx.get(server.url(f"/status/{code}")).status_code == code
    (span,) = recorder.spans
    check_server_span(
        span,
        port=server.port,
        path=f"/status/{code}",
        route="/status/{code}",
        status=code,
        error_type=str(code),
        user_agent=UA,
    )


@pytest.mark.parametrize("code", [400, 401, 404, 429])
def test_4xx_responses_are_not_errors(recorder: SpanRecorder, code: int) -> None:
    with uvicorn_server(starlette_app()) as server:
        assert httpx.get(server.url(f"/status/{code}")).status_code == code
    (span,) = recorder.spans
    check_server_span(
        span, port=server.port, path=f"/status/{code}", route="/status/{code}", status=code, user_agent=UA
    )


def test_unhandled_exception_is_recorded(recorder: SpanRecorder) -> None:
    with uvicorn_server(starlette_app()) as server:
        assert httpx.get(server.url("/boom")).status_code == 500
    (span,) = recorder.spans
    check_server_span(
        span,
        port=server.port,
        path="/boom",
        route="/boom",
        status=500,
        error_type="RuntimeError",
        user_agent=UA,
    )
    check_exception_event(span, "RuntimeError", "boom")
    assert span.status.description == "boom"


def test_a_streamed_response_is_covered_to_its_last_chunk(recorder: SpanRecorder) -> None:
    app = starlette_app()
    with uvicorn_server(app) as server, httpx.stream("GET", server.url("/stream")) as response:
        body = b"".join(response.iter_bytes())
    assert body == b"".join(f"chunk-{n}\n".encode() for n in range(5))
    (span,) = wait_for_spans(recorder, 1)
    check_server_span(span, port=server.port, path="/stream", route="/stream", user_agent=UA)
    assert span.end_time is not None
    assert span.end_time >= app.state.chunks_sent[-1]


@pytest.mark.parametrize("serve", [uvicorn_server, hypercorn_server], ids=["uvicorn", "hypercorn"])
def test_client_disconnect_ends_the_span_once(recorder: SpanRecorder, serve: Any) -> None:
    with serve(starlette_app()) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as client:
            client.sendall(b"GET /forever HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % server.port)
            assert client.recv(4096).startswith(b"HTTP/1.1 200")
        spans = wait_for_spans(recorder, 1)
        time.sleep(0.2)
        assert recorder.spans == spans
    (span,) = spans
    check_server_span(span, port=server.port, path="/forever", route="/forever")


def test_websocket_connection_is_one_span(recorder: SpanRecorder) -> None:
    from websockets.sync.client import connect

    with uvicorn_server(starlette_app()) as server:
        with connect(f"ws://127.0.0.1:{server.port}/ws/lobby", user_agent_header=None) as websocket:
            websocket.send("hello")
            assert websocket.recv(timeout=5) == "HELLO"
            websocket.send("again")
            assert websocket.recv(timeout=5) == "AGAIN"
        (span,) = wait_for_spans(recorder, 1)
    check_server_span(span, port=server.port, path="/ws/lobby", route="/ws/{room}", scheme="ws", status=101)


def test_websocket_refused_before_the_handshake(recorder: SpanRecorder) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with uvicorn_server(starlette_app()) as server:
        with pytest.raises(InvalidStatus):
            connect(f"ws://127.0.0.1:{server.port}/refuse", user_agent_header=None)
        (span,) = wait_for_spans(recorder, 1)
    check_server_span(span, port=server.port, path="/refuse", route="/refuse", scheme="ws", status=403)


def test_lifespan_makes_no_span(recorder: SpanRecorder) -> None:
    with uvicorn_server(raw_app, lifespan="on") as server:
        assert httpx.get(server.url("/ping-me")).status_code == 200
    (span,) = recorder.spans
    check_server_span(span, port=server.port, path="/ping-me", user_agent=UA)


# --------------------------------------------------------------------------- health checks


@pytest.mark.parametrize("path", ["/health", "/healthz", "/metrics", "/healthz?verbose=1"])
def test_health_checks_make_no_span_by_default(recorder: SpanRecorder, path: str) -> None:
    with uvicorn_server(starlette_app()) as server:
        assert httpx.get(server.url(path)).status_code == 200
        assert httpx.get(server.url("/health/deep")).status_code == 200  # exact paths only
    (span,) = recorder.spans
    check_server_span(span, port=server.port, path="/health/deep", route="/health/deep", user_agent=UA)


@pytest.mark.parametrize(
    ("variable", "app"),
    [
        ("OTEL_PYTHON_EXCLUDED_URLS", "starlette"),
        ("OTEL_PYTHON_STARLETTE_EXCLUDED_URLS", "starlette"),
        ("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "fastapi"),
        ("OTEL_PYTHON_ASGI_EXCLUDED_URLS", "raw"),
    ],
)
def test_the_excluded_urls_variable_replaces_the_default(
    monkeypatch: pytest.MonkeyPatch, variable: str, app: str
) -> None:
    monkeypatch.setenv(variable, r"/checkout/,/items/\d+,/hidden")
    application = {"starlette": starlette_app, "fastapi": fastapi_app, "raw": lambda: raw_app}[app]()
    with capture_spans(instrument=SERVER_INTEGRATIONS) as recorder, uvicorn_server(application) as server:
        for path in ("/checkout/7", "/items/7", "/hidden", "/health"):
            httpx.get(server.url(path))
        (span,) = wait_for_spans(recorder, 1)
    route = {"starlette": "/health", "fastapi": "/health", "raw": None}[app]
    check_server_span(span, port=server.port, path="/health", route=route, user_agent=UA)


def test_a_framework_variable_does_not_apply_to_other_apps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "/items/")
    with capture_spans(instrument=SERVER_INTEGRATIONS) as recorder, uvicorn_server(starlette_app()) as server:
        httpx.get(server.url("/items/1"))
        httpx.get(server.url("/health"))
        (span,) = wait_for_spans(recorder, 1)
    check_server_span(span, port=server.port, path="/items/1", route="/items/{item_id}", user_agent=UA)


# --------------------------------------------------------------------------- headers


def test_header_capture_and_sanitizing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "X-Tag,authorization")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", "x-reply,Set-Cookie")
    with capture_spans(instrument=SERVER_INTEGRATIONS) as recorder, uvicorn_server(starlette_app()) as server:
        httpx.get(server.url("/reply-headers"), headers={"X-Tag": "t", "Authorization": "Bearer secret"})
        (span,) = wait_for_spans(recorder, 1)
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


def test_traceresponse_header_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEKIT_TRACERESPONSE", "true")
    with capture_spans(instrument=SERVER_INTEGRATIONS) as recorder, uvicorn_server(starlette_app()) as server:
        response = httpx.get(server.url("/items/1"), headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
        unsampled = httpx.get(server.url("/items/2"), headers={"traceparent": f"00-{TRACE}-{PARENT}-00"})
        (span,) = wait_for_spans(recorder, 1)
    assert response.headers["traceresponse"] == traceparent_of(span)
    assert response.headers["traceresponse"].startswith(f"00-{TRACE}-")
    assert unsampled.headers["traceresponse"].startswith(f"00-{TRACE}-")
    assert unsampled.headers["traceresponse"].endswith("-00")


def test_no_traceresponse_by_default(recorder: SpanRecorder) -> None:
    with uvicorn_server(starlette_app()) as server:
        response = httpx.get(server.url("/items/1"))
    assert "traceresponse" not in response.headers


B3_MULTI = {"X-B3-TraceId": TRACE, "X-B3-SpanId": PARENT, "X-B3-Sampled": "1"}
B3_SINGLE = {"b3": f"{TRACE}-{PARENT}-1"}


@pytest.mark.parametrize(
    ("propagators", "headers"),
    [
        (["tracecontext", "b3multi"], B3_MULTI),
        (["tracecontext", "baggage", "b3multi"], B3_SINGLE),
        (["b3multi"], B3_SINGLE),
        (["b3"], B3_MULTI),
        (["b3"], B3_SINGLE),
    ],
    ids=[
        "b3multi-reads-multi",
        "tracecontext-baggage-b3multi-reads-single",
        "b3multi-reads-single",
        "b3-reads-multi",
        "b3-reads-single",
    ],
)
def test_b3_headers_are_continued_in_either_encoding(propagators: list[str], headers: dict[str, str]) -> None:
    # B3 and the OpenTelemetry specification: a B3 propagator reads both encodings,
    # whichever one it writes.
    with (
        capture_spans(instrument=SERVER_INTEGRATIONS, propagators=propagators) as recorder,
        uvicorn_server(starlette_app()) as server,
    ):
        httpx.get(server.url("/items/5"), headers=headers)
        (span,) = wait_for_spans(recorder, 1)
    check_server_span(span, port=server.port, path="/items/5", route="/items/{item_id}", user_agent=UA)
    assert span.parent is not None
    assert (f"{span.parent.trace_id:032x}", f"{span.parent.span_id:016x}") == (TRACE, PARENT)


def test_http_dup_also_emits_the_old_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http/dup")
    with capture_spans(instrument=SERVER_INTEGRATIONS) as recorder, uvicorn_server(starlette_app()) as server:
        httpx.get(server.url("/items/3?q=1"), headers={"X-Forwarded-For": "203.0.113.9, 10.0.0.1"})
        (span,) = wait_for_spans(recorder, 1)
    check_server_span(
        span,
        port=server.port,
        path="/items/3",
        route="/items/{item_id}",
        query="q=1",
        user_agent=UA,
        extra={
            "client.address": "203.0.113.9",
            "http.method": "GET",
            "http.scheme": "http",
            "http.target": "/items/3?q=1",
            "net.host.name": "127.0.0.1",
            "net.host.port": server.port,
            "http.user_agent": UA,
            "http.flavor": "1.1",
            "net.peer.ip": "127.0.0.1",
            "http.client_ip": "203.0.113.9",
            "http.status_code": 200,
        },
    )


# --------------------------------------------------------------------------- FastAPI


def test_fastapi_routes_from_its_router(recorder: SpanRecorder) -> None:
    with uvicorn_server(fastapi_app()) as server:
        assert httpx.get(server.url("/v1/orders/12")).json() == {"id": 12}
        assert httpx.get(server.url("/checkout/abc")).status_code == 200
        assert httpx.post(server.url("/items")).status_code == 200
        assert httpx.get(server.url("/legacy/pages/3")).status_code == 200
    orders, checkout, items, legacy = in_start_order(recorder)
    check_server_span(
        orders, port=server.port, path="/v1/orders/12", route="/v1/orders/{order_id}", user_agent=UA
    )
    check_server_span(
        checkout, port=server.port, path="/checkout/abc", route="/checkout/{cart_id}", user_agent=UA
    )
    check_server_span(items, port=server.port, path="/items", route="/items", method="POST", user_agent=UA)
    check_server_span(
        legacy, port=server.port, path="/legacy/pages/3", route="/legacy/pages/{page}", user_agent=UA
    )


def test_fastapi_statuses_and_exceptions(recorder: SpanRecorder) -> None:
    with uvicorn_server(fastapi_app()) as server:
        assert httpx.get(server.url("/unavailable")).status_code == 503
        assert httpx.get(server.url("/missing")).status_code == 404
        assert httpx.get(server.url("/numbers/not-a-number")).status_code == 422
        assert httpx.get(server.url("/no-such-route")).status_code == 404
        assert httpx.get(server.url("/crash")).status_code == 500
    unavailable, missing, invalid, no_route, crash = in_start_order(recorder)
    check_server_span(
        unavailable,
        port=server.port,
        path="/unavailable",
        route="/unavailable",
        status=503,
        error_type="503",
        user_agent=UA,
    )
    check_server_span(missing, port=server.port, path="/missing", route="/missing", status=404, user_agent=UA)
    check_server_span(
        invalid,
        port=server.port,
        path="/numbers/not-a-number",
        route="/numbers/{number}",
        status=422,
        user_agent=UA,
    )
    check_server_span(no_route, port=server.port, path="/no-such-route", status=404, user_agent=UA)
    check_server_span(
        crash,
        port=server.port,
        path="/crash",
        route="/crash",
        status=500,
        error_type="ValueError",
        user_agent=UA,
    )
    check_exception_event(crash, "ValueError", "crash")


def test_fastapi_own_telemetry_makes_no_second_span(recorder: SpanRecorder) -> None:
    with uvicorn_server(fastapi_app()) as server:
        httpx.get(server.url("/checkout/1"))
        httpx.get(server.url("/health"))
    (span,) = recorder.spans  # no FastAPI SERVER span, no fastapi.* operation spans, health excluded
    check_server_span(span, port=server.port, path="/checkout/1", route="/checkout/{cart_id}", user_agent=UA)


def test_every_hook_at_once_still_makes_one_span(recorder: SpanRecorder) -> None:
    # uvicorn's hook, the middleware, FastAPI's and Starlette's hooks all see this request.
    app = TracekitMiddleware(TracekitMiddleware(fastapi_app()))
    with uvicorn_server(app) as server:
        httpx.get(server.url("/v1/orders/1"))
        httpx.get(server.url("/legacy/pages/2"))
    orders, legacy = in_start_order(recorder)
    check_server_span(
        orders, port=server.port, path="/v1/orders/1", route="/v1/orders/{order_id}", user_agent=UA
    )
    check_server_span(
        legacy, port=server.port, path="/legacy/pages/2", route="/legacy/pages/{page}", user_agent=UA
    )


# --------------------------------------------------------------------------- raw ASGI apps, hypercorn


def test_raw_asgi_app_under_uvicorn(recorder: SpanRecorder) -> None:
    with uvicorn_server(raw_app) as server:
        assert httpx.post(server.url("/anything/here?api_key=k&x=1"), content=b"body").status_code == 200
        assert httpx.get(server.url("/crash")).status_code == 500
    anything, crash = in_start_order(recorder)
    check_server_span(
        anything,
        port=server.port,
        path="/anything/here",
        method="POST",
        query="api_key=REDACTED&x=1",
        user_agent=UA,
    )
    check_server_span(
        crash, port=server.port, path="/crash", status=None, error_type="KeyError", user_agent=UA
    )
    check_exception_event(crash, "KeyError", "'crash'")


@pytest.mark.parametrize("which", ["raw", "fastapi"])
def test_hypercorn(recorder: SpanRecorder, which: str) -> None:
    app = raw_app if which == "raw" else fastapi_app()
    path = "/items/9" if which == "raw" else "/v1/orders/9"
    with hypercorn_server(app) as server:
        response = httpx.get(server.url(path), headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
        assert response.status_code == 200
        (span,) = wait_for_spans(recorder, 1)
    route = None if which == "raw" else "/v1/orders/{order_id}"
    check_server_span(span, port=server.port, path=path, route=route, user_agent=UA)
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == PARENT


def test_an_exception_escapes_the_middleware_unchanged(recorder: SpanRecorder) -> None:
    class Failure(Exception):
        pass

    failure = Failure("kept")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise failure

    async def main() -> None:
        scope = {"type": "http", "method": "GET", "path": "/x", "headers": [], "client": ("127.0.0.1", 1)}
        await TracekitMiddleware(app)(scope, None, None)

    with pytest.raises(Failure) as raised:
        asyncio.run(main())
    assert raised.value is failure
    (span,) = recorder.spans
    assert span.attributes is not None
    assert span.attributes["error.type"].endswith(
        "test_asgi_servers.test_an_exception_escapes_the_middleware_unchanged.<locals>.Failure"
    )
    assert span.status.status_code is StatusCode.ERROR


def test_middleware_without_tracekit_configured_passes_through() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(dict(scope))

    asyncio.run(TracekitMiddleware(app)({"type": "http", "path": "/"}, None, None))
    assert seen == [{"type": "http", "path": "/"}]


def test_an_internal_failure_leaves_the_request_untraced_and_served(
    recorder: SpanRecorder, monkeypatch: pytest.MonkeyPatch, guarded_errors: list[Any]
) -> None:
    from tracekit import _http_server

    def broken(host: str, scheme: str) -> Any:
        raise RuntimeError("tracekit bug")

    monkeypatch.setattr(_http_server, "split_host", broken)
    with uvicorn_server(starlette_app()) as server:
        assert httpx.get(server.url("/items/1")).json() == {"id": 1}
    assert recorder.spans == []
    assert [(name, str(exc)) for name, exc in guarded_errors] == [("uvicorn", "tracekit bug")]
    guarded_errors.clear()


def test_a_failure_deciding_early_still_serves_and_traces_the_request(
    recorder: SpanRecorder, monkeypatch: pytest.MonkeyPatch, guarded_errors: list[Any]
) -> None:
    # The early sampling decision (tracekit._http_server.skipped) is only a shortcut: when it
    # fails, the span is made the usual way.
    def broken(context: Any = None) -> Any:
        raise RuntimeError("tracekit bug")

    monkeypatch.setattr(_state.tracer, "dropped_root", broken)
    with uvicorn_server(starlette_app()) as server:
        assert httpx.get(server.url("/items/1")).json() == {"id": 1}
        (span,) = wait_for_spans(recorder, 1)
    check_server_span(span, port=server.port, path="/items/1", route="/items/{item_id}", user_agent=UA)
    assert [(name, str(exc)) for name, exc in guarded_errors] == [("uvicorn", "tracekit bug")]
    guarded_errors.clear()


# --------------------------------------------------------------------------- one connected trace


def test_a_call_to_another_service_is_one_connected_trace() -> None:
    with (
        capture_spans(instrument=[*SERVER_INTEGRATIONS, "httpx"]) as recorder,
        uvicorn_server(raw_app) as downstream,
        uvicorn_server(fastapi_app(downstream.base)) as upstream,
    ):
        seen = httpx.get(upstream.url("/call")).json()
        spans = wait_for_spans(recorder, 4)
    test_client = only(
        spans, lambda s: s.kind is SpanKind.CLIENT and s.attributes["server.port"] == upstream.port
    )
    upstream_span = only(spans, lambda s: s.kind is SpanKind.SERVER and s.name == "GET /call")
    call = only(spans, lambda s: s.kind is SpanKind.CLIENT and s.attributes["server.port"] == downstream.port)
    downstream_span = only(spans, lambda s: s.kind is SpanKind.SERVER and s.name == "GET")
    assert len(spans) == 4
    assert {span.context.trace_id for span in spans} == {test_client.context.trace_id}
    assert test_client.parent is None
    assert upstream_span.parent is not None
    assert upstream_span.parent.span_id == test_client.context.span_id
    assert call.parent is not None
    assert call.parent.span_id == upstream_span.context.span_id
    assert downstream_span.parent is not None
    assert downstream_span.parent.span_id == call.context.span_id
    assert seen["headers"]["traceparent"] == traceparent_of(call)
    check_server_span(upstream_span, port=upstream.port, path="/call", route="/call", user_agent=UA)
    check_server_span(downstream_span, port=downstream.port, path="/echo", user_agent=UA)


# --------------------------------------------------------------------------- W3C Trace Context, end to end


def _through(upstream: Any, headers: list[tuple[str, str]]) -> dict[str, str]:
    """Send ``headers`` (fields in order, repeats kept) to the upstream service's /call;
    return the headers its outgoing httpx request carried to the downstream service."""
    connection = http.client.HTTPConnection("127.0.0.1", upstream.port, timeout=10)
    try:
        connection.putrequest("GET", "/call")
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 200
        seen: dict[str, str] = json.loads(response.read())["headers"]
        return seen
    finally:
        connection.close()


@pytest.fixture
def services() -> Iterator[tuple[SpanRecorder, Any]]:
    with (
        capture_spans(instrument=["fastapi", "httpx"]) as recorder,
        uvicorn_server(raw_app) as downstream,
        uvicorn_server(fastapi_app(downstream.base)) as upstream,
    ):
        yield recorder, upstream


def _outgoing(recorder: SpanRecorder) -> Any:
    spans = wait_for_spans(recorder, 2)
    return only(spans, lambda s: s.kind is SpanKind.CLIENT)


@pytest.mark.parametrize(
    ("traceparent", "flags"),
    [
        (f"00-{TRACE}-{PARENT}-01", "01"),
        (f"00-{TRACE}-{PARENT}-03", "03"),
        (f"00-{TRACE}-{PARENT}-09", "01"),
        (f"cc-{TRACE}-{PARENT}-ff-future-fields", "03"),
        (f"\t 00-{TRACE}-{PARENT}-01 ", "01"),
    ],
)
def test_a_valid_traceparent_is_continued_downstream(
    services: tuple[SpanRecorder, Any], traceparent: str, flags: str
) -> None:
    recorder, upstream = services
    seen = _through(
        upstream, [("traceparent", traceparent), ("tracestate", "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE")]
    )
    call = _outgoing(recorder)
    assert seen["traceparent"] == f"00-{TRACE}-{call.context.span_id:016x}-{flags}"
    assert seen["tracestate"] == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"


@pytest.mark.parametrize(
    "headers",
    [
        [("traceparent", f"00-{TRACE.upper()}-{PARENT}-01")],
        [("traceparent", f"00-{TRACE}-{PARENT}-01-extra")],
        [("traceparent", f"ff-{TRACE}-{PARENT}-01")],
        [("traceparent", f"00-{'0' * 32}-{PARENT}-01")],
        [("traceparent", f"00-{TRACE}-{PARENT}-01"), ("traceparent", f"00-{TRACE}-{PARENT}-01")],
        [("tracestate", "congo=t61rcWkgMzE")],
    ],
    ids=[
        "uppercase",
        "version-00-extra",
        "version-ff",
        "zero-trace-id",
        "two-traceparents",
        "only-tracestate",
    ],
)
def test_an_invalid_traceparent_restarts_the_trace(
    services: tuple[SpanRecorder, Any], headers: list[tuple[str, str]]
) -> None:
    recorder, upstream = services
    seen = _through(upstream, [*headers, ("tracestate", "congo=t61rcWkgMzE")])
    call = _outgoing(recorder)
    assert seen["traceparent"] == traceparent_of(call)
    assert f"{call.context.trace_id:032x}" != TRACE
    assert seen["tracestate"] == "ot=th:0"  # the new trace's own (sampled at 1.0), not the caller's


def _sampled_through(services: tuple[SpanRecorder, Any], tracestate: list[str]) -> dict[str, str]:
    """What the downstream service received after a sampled request carrying ``tracestate``
    fields; the trace is continued under the upstream's outgoing call either way."""
    recorder, upstream = services
    seen: dict[str, str] = _through(
        upstream, [("traceparent", f"00-{TRACE}-{PARENT}-01"), *(("tracestate", v) for v in tracestate)]
    )
    call = _outgoing(recorder)
    assert seen["traceparent"] == f"00-{TRACE}-{call.context.span_id:016x}-01"
    return seen


@pytest.mark.parametrize(
    "tracestate",
    [
        [",".join(f"k{n}=v" for n in range(33))],
        ["FOO=1"],
        ["foo=bar=baz"],
        ["k" * 257 + "=1"],
    ],
    ids=["33-members", "uppercase-key", "bad-value", "long-key"],
)
def test_an_invalid_tracestate_is_dropped_and_the_trace_continued(
    services: tuple[SpanRecorder, Any], tracestate: list[str]
) -> None:
    seen = _sampled_through(services, tracestate)
    assert "tracestate" not in seen


@pytest.mark.parametrize(
    ("tracestate", "passed_on"),
    [
        (["foo=1,foo=2"], "foo=1"),
        (["foo=1", "foo=2,bar=3"], "foo=1,bar=3"),
        (["t" * 242 + "@s=1,foo@=2"], "t" * 242 + "@s=1,foo@=2"),
    ],
    ids=["duplicate", "duplicate-across-fields", "level-2-keys"],
)
def test_a_level_2_tracestate_is_passed_on(
    services: tuple[SpanRecorder, Any], tracestate: list[str], passed_on: str
) -> None:
    # W3C Trace Context Level 2: '@' anywhere in a key after its first character; of a
    # duplicated key a vendor may keep one member (tracekit keeps the first).
    seen = _sampled_through(services, tracestate)
    assert seen["tracestate"] == passed_on


def test_tracestate_fields_are_combined_and_passed_on(services: tuple[SpanRecorder, Any]) -> None:
    recorder, upstream = services
    seen = _through(
        upstream,
        [
            ("traceparent", f"00-{TRACE}-{PARENT}-01"),
            ("tracestate", "a=1,,b=2"),
            ("tracestate", ""),
            ("tracestate", " tenant@vendor=x y ,\tc=3"),
        ],
    )
    _outgoing(recorder)
    assert seen["tracestate"] == "a=1,b=2,tenant@vendor=x y,c=3"


def test_an_unsampled_caller_is_followed_and_still_propagated(services: tuple[SpanRecorder, Any]) -> None:
    recorder, upstream = services
    seen = _through(upstream, [("traceparent", f"00-{TRACE}-{PARENT}-00")])
    time.sleep(0.2)
    assert recorder.spans == []
    # No span is made for the request or the call (see Tracer.dropped_child), yet the call
    # names this service, not the caller, as its parent (W3C Trace Context).
    trace_part, span_part, flags = seen["traceparent"].split("-")[1:]
    assert (trace_part, flags) == (TRACE, "00")
    assert span_part not in (PARENT, "0" * 16)


def test_tracekit_shutdown_makes_the_middleware_transparent() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope.get("tracekit.request", "absent"))

    tracing = tracekit.configure(exporters=[], instrument=False)
    tracing.shutdown()
    asyncio.run(TracekitMiddleware(app)({"type": "http", "path": "/", "headers": []}, None, None))
    assert seen == ["absent"]


def test_django_under_asgi_gets_its_route_and_exception(recorder: SpanRecorder) -> None:
    configure_django()
    from django.core.asgi import get_asgi_application

    with uvicorn_server(get_asgi_application()) as server:
        assert httpx.get(server.url("/api/v1/orders/4/")).status_code == 200
        assert httpx.get(server.url("/crash/")).status_code == 500
    order, crash = in_start_order(recorder)
    check_server_span(
        order,
        port=server.port,
        path="/api/v1/orders/4/",
        route="/api/v1/orders/<int:order_id>/",
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
