"""Keeping the failing and the slow requests of a FastAPI service sampled at ratio 0.

A real uvicorn on 127.0.0.1 serves the application, tracekit is configured from the
environment (``OTEL_TRACES_SAMPLER_ARG=0``, ``TRACEKIT_KEEP_ERRORS``, ``TRACEKIT_KEEP_SLOW_MS``)
and exports OTLP/HTTP to tracekit's receiver, which decodes the protobuf requests. Requests
are sent with ``http.client`` (not instrumented: the test client makes no span of its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode
from servercheck import SERVER_INTEGRATIONS, Served, uvicorn_server

import tracekit
from tracekit._keep import KEPT_ATTRIBUTE, KeepProcessor
from tracekit._receiver import ReceivedSpan
from tracekit.testing import OTLPReceiver

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
OTHER_PARENT = "b7ad6b7169203331"
SLOW_MS = 300
#: The flood: requests in flight at once, ended spans each, buffer, traces the buffer holds.
FLOOD, FLOOD_SPANS, FLOOD_BUFFER = 10, 4, 20
FLOOD_HELD = FLOOD_BUFFER // FLOOD_SPANS
BOUND = 10.0

#: OTLP Span.flags: W3C flags in bits 0-7, bit 8 "is_remote known", bit 9 "parent is remote".
KEPT_LOCAL_ROOT = 0x100 | 0x03  # sampled (the copy) and random (tracekit's root ids)
KEPT_REMOTE_CHILD = 0x300 | 0x01  # the caller's flags were 00: sampled (the copy) only
KEPT_UNDER_REMOTE = 0x100 | 0x01


# --------------------------------------------------------------------------- the service


def keep_app(downstream: str) -> Any:
    from fastapi import FastAPI

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=BOUND) as client:
            app.state.client = client
            yield

    app = FastAPI(lifespan=lifespan)
    app.state.release = asyncio.Event()
    app.state.arrived = []
    app.state.held = []

    async def call_downstream() -> str:
        response = await app.state.client.get(f"{downstream}/ok")
        sent: str = response.json()["headers"]["traceparent"]
        return sent

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        with tracekit.span("ok.work"):
            pass
        return {"sent": await call_downstream()}

    @app.get("/fail")
    async def fail() -> None:
        with tracekit.span("fail.work"):
            pass
        await call_downstream()
        raise RuntimeError("payment declined")

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        with tracekit.span("slow.work"):
            await asyncio.sleep(SLOW_MS / 1000 + 0.2)
        return {"slow": True}

    @app.get("/held-then-fail")
    async def held_then_fail() -> None:
        with tracekit.span("held.step"):
            pass
        app.state.arrived.append("held-then-fail")
        await asyncio.wait_for(app.state.release.wait(), BOUND)
        raise RuntimeError("failed after waiting")

    @app.get("/flood/{number}")
    async def flood(number: int, fail: str) -> dict[str, int]:
        processor: KeepProcessor = app.state.processor
        for _ in range(4):
            with tracekit.span("flood.step"):
                pass
            app.state.held.append(processor.held_spans)
        app.state.arrived.append(number)
        await asyncio.wait_for(app.state.release.wait(), BOUND)
        # fail=all: every request fails; fail=held: those whose traces are still held
        if fail == "all" or app.state.arrived.index(number) >= FLOOD - FLOOD_HELD:
            raise RuntimeError(f"flood {number} failed")
        return {"number": number}

    @app.get("/release")
    async def release() -> dict[str, bool]:
        app.state.release.set()
        return {"released": True}

    return app


# --------------------------------------------------------------------------- helpers


def keep_processor(tracing: tracekit.Tracing) -> KeepProcessor:
    assert tracing.provider is not None
    (processor,) = [
        p for p in tracing.provider._active_span_processor._span_processors if isinstance(p, KeepProcessor)
    ]
    return processor


@pytest.fixture
def keep_env(monkeypatch: pytest.MonkeyPatch, receiver: OTLPReceiver) -> Callable[..., tracekit.Tracing]:
    """Configure tracekit from the environment: ratio 0, keep errors and slow requests, OTLP/HTTP."""

    def configure(**variables: str) -> tracekit.Tracing:
        env = {
            "OTEL_SERVICE_NAME": "keep-fastapi",
            "OTEL_TRACES_SAMPLER_ARG": "0",
            "TRACEKIT_KEEP_ERRORS": "true",
            "TRACEKIT_KEEP_SLOW_MS": str(SLOW_MS),
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_endpoint,
            **variables,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        tracing = tracekit.configure(instrument=[*SERVER_INTEGRATIONS, "httpx"])
        assert (tracing.settings.sample_ratio, tracing.settings.keep_errors) == (0.0, True)
        assert tracing.settings.keep_slow_ms == SLOW_MS
        return tracing

    return configure


def get(server: Served, path: str, traceparent: str | None = None) -> tuple[int, bytes]:
    """GET ``path`` with http.client (no client span), optionally carrying ``traceparent``."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=BOUND)
    try:
        headers = {} if traceparent is None else {"traceparent": traceparent}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {BOUND} s"
        time.sleep(0.01)


def server_attributes(server: Served, path: str, route: str, status: int, **extra: Any) -> dict[str, Any]:
    return {
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": path,
        "server.address": "127.0.0.1",
        "server.port": server.port,
        "client.address": "127.0.0.1",
        "network.peer.address": "127.0.0.1",
        "network.protocol.version": "1.1",
        "http.route": route,
        "http.response.status_code": status,
        **extra,
    }


def by_trace(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    traces: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)
    return traces


def the_trace(
    traces: dict[str, list[ReceivedSpan]], server_name: str, parent: str | None
) -> list[ReceivedSpan]:
    """The one received trace whose SERVER span is ``server_name`` under ``parent``."""
    found = [
        spans
        for spans in traces.values()
        if any(
            s.kind is SpanKind.SERVER and s.name == server_name and s.parent_span_id == parent for s in spans
        )
    ]
    assert len(found) == 1, {trace_id: [s.name for s in spans] for trace_id, spans in traces.items()}
    return found[0]


def check_common(span: ReceivedSpan) -> None:
    assert span.scope_name == "tracekit"
    assert span.resource["service.name"] == "keep-fastapi"
    assert span.protocol == "http"


def check_exception(span: ReceivedSpan, error_type: str, message: str) -> None:
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == error_type
    assert event.attributes["exception.message"] == message
    assert error_type in event.attributes["exception.stacktrace"]


# --------------------------------------------------------------------------- the scenario


def test_failing_and_slow_requests_arrive_whole_and_normal_ones_do_not(
    keep_env: Callable[..., tracekit.Tracing], receiver: OTLPReceiver, http_server: Any
) -> None:
    tracing = keep_env()
    seen_before = len(http_server.seen)
    with uvicorn_server(keep_app(http_server.base), lifespan="on") as server:
        status, body = get(server, "/ok")
        assert status == 200
        ok_sent = json.loads(body)["sent"]
        assert get(server, "/fail")[0] == 500
        assert get(server, "/slow") == (200, b'{"slow":true}')
        status, body = get(server, "/ok")
        assert status == 200
        ok_again_sent = json.loads(body)["sent"]
        assert get(server, "/fail", traceparent=f"00-{TRACE}-{PARENT}-00")[0] == 500
    assert tracing.force_flush(timeout=BOUND)
    spans = receiver.wait_for_spans(8, timeout=BOUND)
    assert len(spans) == 8, [span.name for span in spans]
    traces = by_trace(spans)
    assert len(traces) == 3

    # normal requests: recorded, propagated as not sampled, never exported
    for sent in (ok_sent, ok_again_sent):
        version, trace_id, _, flags = sent.split("-")
        assert (version, flags) == ("00", "02")
        assert trace_id not in traces
    assert "ok.work" not in {span.name for span in spans}

    # the failing request: its SERVER span and all its local spans, marked error
    failed = the_trace(traces, "GET /fail", None)
    assert [(span.name, span.kind) for span in failed] == [
        ("fail.work", SpanKind.INTERNAL),
        ("GET", SpanKind.CLIENT),
        ("GET /fail", SpanKind.SERVER),
    ]
    work, call, root = failed
    assert {span.parent_span_id for span in (work, call)} == {root.span_id}
    assert len({span.span_id for span in failed}) == 3
    assert [span.flags for span in failed] == [KEPT_LOCAL_ROOT] * 3
    assert root.attributes == server_attributes(
        server, "/fail", "/fail", 500, **{"error.type": "RuntimeError", KEPT_ATTRIBUTE: "error"}
    )
    assert (root.status_code, root.status_message) == (StatusCode.ERROR, "payment declined")
    check_exception(root, "RuntimeError", "payment declined")
    assert work.attributes == {KEPT_ATTRIBUTE: "error"}
    assert call.attributes == {
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "server.port": http_server.port,
        "url.full": f"{http_server.base}/ok",
        "http.response.status_code": 200,
        "network.protocol.version": "1.1",
        KEPT_ATTRIBUTE: "error",
    }
    assert [(s.status_code, s.events) for s in (work, call)] == [(StatusCode.UNSET, ())] * 2
    failed_call = call

    # the slow request: marked slow, its SERVER span at least the threshold long
    slow = the_trace(traces, "GET /slow", None)
    assert [(span.name, span.kind) for span in slow] == [
        ("slow.work", SpanKind.INTERNAL),
        ("GET /slow", SpanKind.SERVER),
    ]
    step, slow_root = slow
    assert step.parent_span_id == slow_root.span_id
    assert slow_root.attributes == server_attributes(
        server, "/slow", "/slow", 200, **{KEPT_ATTRIBUTE: "slow"}
    )
    assert step.attributes == {KEPT_ATTRIBUTE: "slow"}
    assert [(s.status_code, s.flags) for s in slow] == [(StatusCode.UNSET, KEPT_LOCAL_ROOT)] * 2
    assert slow_root.end_time_unix_nano - slow_root.start_time_unix_nano >= SLOW_MS * 1_000_000

    # a failing request whose caller sent "not sampled": kept under the caller's span
    remote = traces[TRACE]
    assert [(span.name, span.kind) for span in remote] == [
        ("fail.work", SpanKind.INTERNAL),
        ("GET", SpanKind.CLIENT),
        ("GET /fail", SpanKind.SERVER),
    ]
    work, call, root = remote
    assert root.parent_span_id == PARENT
    assert {span.parent_span_id for span in (work, call)} == {root.span_id}
    assert [span.flags for span in remote] == [KEPT_UNDER_REMOTE, KEPT_UNDER_REMOTE, KEPT_REMOTE_CHILD]
    assert root.attributes == server_attributes(
        server, "/fail", "/fail", 500, **{"error.type": "RuntimeError", KEPT_ATTRIBUTE: "error"}
    )
    assert root.status_code is StatusCode.ERROR
    assert {span.attributes[KEPT_ATTRIBUTE] for span in remote} == {"error"}

    # what the downstream service received, in order: every trace propagated as not sampled
    assert [headers["traceparent"] for _, _, headers in http_server.seen[seen_before:]] == [
        ok_sent,
        f"00-{failed_call.trace_id}-{failed_call.span_id}-02",
        ok_again_sent,
        f"00-{TRACE}-{call.span_id}-00",
    ]

    for span in spans:
        check_common(span)
    stats = tracekit.stats()
    assert (stats.kept_traces, stats.keep_evicted_traces) == (3, 0)
    assert (stats.exported, stats.dropped, stats.failed, stats.queued) == (8, 0, 0, 0)
    assert keep_processor(tracing).held_spans == 0
    assert receiver.errors == []


# --------------------------------------------------------------------------- two requests of one trace


class _Ended(SpanProcessor):
    """Names of every span ended, recorded or not sampled (a test probe added to the provider)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.names.append(span.name)

    def shutdown(self, timeout_millis: int = 30000) -> None:
        """tracekit's shutdown passes a time limit, as to its own processors."""


def test_concurrent_requests_of_one_unsampled_trace_are_judged_apart(
    keep_env: Callable[..., tracekit.Tracing], receiver: OTLPReceiver, http_server: Any
) -> None:
    """A caller fans out two requests of one unsampled trace: the normal one ends first. It
    must not take the failing one's ended spans with it (both are local roots of one trace)."""
    tracing = keep_env()
    ended = _Ended()
    assert tracing.provider is not None
    tracing.provider.add_span_processor(ended)
    app = keep_app(http_server.base)
    with uvicorn_server(app, lifespan="on") as server, ThreadPoolExecutor(1) as pool:
        held = pool.submit(get, server, "/held-then-fail", f"00-{TRACE}-{PARENT}-00")
        wait_until(lambda: app.state.arrived == ["held-then-fail"], "the first request did not start")
        assert get(server, "/ok", f"00-{TRACE}-{OTHER_PARENT}-00")[0] == 200
        wait_until(lambda: "GET /ok" in ended.names, "the /ok SERVER span did not end")
        assert get(server, "/release")[0] == 200
        assert held.result(timeout=BOUND)[0] == 500
    assert tracing.force_flush(timeout=BOUND)
    time.sleep(0.2)
    spans = receiver.spans
    names = [(span.name, span.trace_id, span.attributes.get(KEPT_ATTRIBUTE)) for span in spans]
    assert [name for name, _, _ in names] == ["held.step", "GET /held-then-fail"], (
        f"the failing request arrived as {names}"
    )
    step, root = spans
    assert (root.trace_id, root.parent_span_id, step.parent_span_id) == (TRACE, PARENT, root.span_id)
    assert {span.attributes[KEPT_ATTRIBUTE] for span in spans} == {"error"}


# --------------------------------------------------------------------------- a flood


def flood(
    keep_env: Callable[..., tracekit.Tracing], receiver: OTLPReceiver, http_server: Any, fail: str
) -> tuple[Served, list[int], list[int], list[ReceivedSpan]]:
    """Send the flood; return the server, the arrival order, the statuses and what arrived.

    Every request ends its spans, then waits: all are in flight, their roots open, when the
    buffer is checked; ``/release`` lets them answer (fail=all: all fail; fail=held: the ones
    whose traces are still held fail, the evicted ones succeed).
    """
    tracing = keep_env(TRACEKIT_KEEP_BUFFER_SPANS=str(FLOOD_BUFFER))
    app = keep_app(http_server.base)
    app.state.processor = processor = keep_processor(tracing)
    with uvicorn_server(app, lifespan="on") as server, ThreadPoolExecutor(FLOOD) as pool:
        answers = [pool.submit(get, server, f"/flood/{number}?fail={fail}") for number in range(FLOOD)]
        wait_until(lambda: len(app.state.arrived) == FLOOD, f"{FLOOD} requests did not arrive")
        assert len(app.state.held) == FLOOD * FLOOD_SPANS
        assert max(app.state.held) == FLOOD_BUFFER  # the bound is reached, never passed
        assert processor.held_spans == FLOOD_BUFFER
        stats = tracekit.stats()
        assert (stats.keep_evicted_traces, stats.kept_traces) == (FLOOD - FLOOD_HELD, 0)
        assert get(server, "/release")[0] == 200
        statuses = [answer.result(timeout=BOUND)[0] for answer in answers]
    assert tracing.force_flush(timeout=BOUND)
    time.sleep(0.2)  # anything else would have been flushed by now
    assert processor.held_spans == 0
    assert receiver.errors == []
    return server, list(app.state.arrived), statuses, receiver.spans


def check_held_flood_traces(server: Served, held: list[int], spans: list[ReceivedSpan], fail: str) -> None:
    """The traces still held when their requests failed arrived whole, marked error."""
    traces = by_trace(spans)
    roots = {span.attributes["url.path"]: span for span in spans if span.kind is SpanKind.SERVER}
    for number in held:
        root = roots[f"/flood/{number}"]
        members = traces[root.trace_id]
        assert [span.name for span in members] == ["flood.step"] * FLOOD_SPANS + ["GET /flood/{number}"]
        assert {span.parent_span_id for span in members[:-1]} == {root.span_id}
        assert {span.attributes[KEPT_ATTRIBUTE] for span in members} == {"error"}
        assert root.parent_span_id is None
        assert root.attributes == server_attributes(
            server,
            f"/flood/{number}",
            "/flood/{number}",
            500,
            **{"url.query": f"fail={fail}", "error.type": "RuntimeError", KEPT_ATTRIBUTE: "error"},
        )
        assert (root.status_code, root.status_message) == (StatusCode.ERROR, f"flood {number} failed")


def test_a_flood_of_requests_hits_the_buffer_bound_without_growing_past_it(
    keep_env: Callable[..., tracekit.Tracing], receiver: OTLPReceiver, http_server: Any
) -> None:
    """Ten requests in flight at once, four ended spans each, a buffer of 20 spans: the first
    five traces are evicted whole, the last five held; those five fail and arrive whole."""
    server, arrived, statuses, spans = flood(keep_env, receiver, http_server, "held")
    held = arrived[FLOOD - FLOOD_HELD :]
    assert sorted(held + arrived[: FLOOD - FLOOD_HELD]) == list(range(FLOOD))
    assert [statuses[number] for number in held] == [500] * FLOOD_HELD
    assert [statuses[number] for number in arrived[: FLOOD - FLOOD_HELD]] == [200] * (FLOOD - FLOOD_HELD)
    check_held_flood_traces(server, held, spans, "held")
    assert len(spans) == FLOOD_HELD * (FLOOD_SPANS + 1)
    stats = tracekit.stats()
    assert (stats.keep_evicted_traces, stats.kept_traces, stats.exported) == (5, 5, 25)


def test_failing_requests_whose_traces_were_evicted_do_not_arrive_in_part(
    keep_env: Callable[..., tracekit.Tracing], receiver: OTLPReceiver, http_server: Any
) -> None:
    """As above, but all ten fail: the five evicted traces were discarded whole and must
    not arrive as lone SERVER spans."""
    server, arrived, statuses, spans = flood(keep_env, receiver, http_server, "all")
    assert statuses == [500] * FLOOD
    held = arrived[FLOOD - FLOOD_HELD :]
    check_held_flood_traces(server, held, spans, "all")
    evicted = sorted(
        span.attributes["url.path"]
        for span in spans
        if span.kind is SpanKind.SERVER and int(span.attributes["url.path"].rsplit("/", 1)[1]) not in held
    )
    assert evicted == [], f"evicted traces arrived in part (their SERVER spans alone): {evicted}"
    assert len(spans) == FLOOD_HELD * (FLOOD_SPANS + 1)
    stats = tracekit.stats()
    assert (stats.keep_evicted_traces, stats.kept_traces, stats.exported) == (5, 5, 25)
