"""Threads, thread pools and asyncio tasks keep the context of the code that started them."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opentelemetry import context as otel_context

import tracekit
from tracekit import _state
from tracekit.testing import SpanRecorder


def _child(name: str) -> None:
    with _state.tracer.start_as_current_span(name):
        pass


def _parents(spans: SpanRecorder) -> dict[str, Any]:
    recorded = {span.name: span for span in spans.spans}
    return {name: (span.parent.span_id if span.parent else None) for name, span in recorded.items()} | {
        f"{name}#id": span.context.span_id for name, span in recorded.items()
    }


def test_thread_keeps_the_starting_context(spans: SpanRecorder) -> None:
    class Worker(threading.Thread):
        def run(self) -> None:  # a subclass overriding run() is covered too
            _child("subclass")

    with _state.tracer.start_as_current_span("parent"):
        threads = [threading.Thread(target=_child, args=("target",)), Worker()]
        for thread in threads:
            thread.start()
    for thread in threads:
        thread.join(timeout=10)
    seen = _parents(spans)
    assert seen["target"] == seen["parent#id"]
    assert seen["subclass"] == seen["parent#id"]


def test_thread_pool_submissions_run_in_the_submitters_context(spans: SpanRecorder) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        with _state.tracer.start_as_current_span("first"):
            pool.submit(_child, "one").result(timeout=10)
        with _state.tracer.start_as_current_span("second"):
            list(pool.map(_child, ["two", "three"]))
        pool.submit(_child, "orphan").result(timeout=10)
    seen = _parents(spans)
    assert seen["one"] == seen["first#id"]
    assert seen["two"] == seen["second#id"]
    assert seen["three"] == seen["second#id"]
    assert seen["orphan"] is None


def test_run_in_executor_and_asyncio_tasks(spans: SpanRecorder) -> None:
    async def main() -> None:
        with _state.tracer.start_as_current_span("parent"):
            await asyncio.get_running_loop().run_in_executor(None, _child, "executor")
            await asyncio.gather(asyncio.create_task(_task_child()))

    async def _task_child() -> None:
        _child("task")

    asyncio.run(main())
    seen = _parents(spans)
    assert seen["executor"] == seen["parent#id"]
    assert seen["task"] == seen["parent#id"]


def test_uninstrumented_threads_start_with_an_empty_context(spans: SpanRecorder) -> None:
    tracekit.uninstrument("threading")
    with _state.tracer.start_as_current_span("parent"):
        thread = threading.Thread(target=_child, args=("alone",))
        thread.start()
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(_child, "pooled").result(timeout=10)
    thread.join(timeout=10)
    seen = _parents(spans)
    assert seen["alone"] is None
    assert seen["pooled"] is None


def test_a_pool_worker_thread_does_not_keep_the_first_submitters_span(spans: SpanRecorder) -> None:
    class Probe:
        """Rides in the submitter's context; only that context refers to it."""

    with ThreadPoolExecutor(max_workers=1) as pool:
        probe = Probe()
        token = otel_context.attach(otel_context.set_value("tracekit.test.probe", probe))
        try:
            with _state.tracer.start_as_current_span("parent"):
                pool.submit(_child, "first").result(timeout=10)  # starts the worker thread
        finally:
            otel_context.detach(token)
        reference = weakref.ref(probe)
        del probe
        gc.collect()
        assert reference() is None, "the worker thread still holds the first submitter's context"
    seen = _parents(spans)
    assert seen["first"] == seen["parent#id"]
