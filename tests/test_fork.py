"""A forked child: its own process.pid and instance id, its own exporter, and no inherited import lock."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import tracekit
from tracekit.exporters._otlp import OTLPSpanExporter

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")


def in_child(check: str) -> str:
    """Fork; the child evaluates ``check`` (an expression) and reports ``repr`` of it."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.write(write, repr(eval(check)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    return answer


class Slow(SpanExporter):
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.done = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        time.sleep(self.delay)  # stands for the imports of a first request
        self.done.set()
        return SpanExportResult.SUCCESS


def test_fork_waits_for_the_first_export_and_the_child_builds_its_own() -> None:
    slow = Slow(0.3)
    exporter = OTLPSpanExporter(lambda: slow, "http/protobuf", "http://127.0.0.1:4318/v1/traces")
    sender = threading.Thread(target=exporter.export, args=([],))
    sender.start()
    time.sleep(0.05)
    globals()["_exporter_under_test"] = exporter
    assert in_child("_exporter_under_test._exporter is None") == "True"
    assert slow.done.is_set()  # fork() returned only after the first export
    sender.join(5)
    assert exporter._exporter is slow
    started = time.monotonic()
    in_child("1")
    assert time.monotonic() - started < 0.25  # later exports do not hold forks back


def test_the_resource_follows_the_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=payments")
    tracing = tracekit.configure(service_name="forking", exporters=[])
    globals()["_tracing_under_test"] = tracing
    # The provider's current resource (the SDK's own fork hook may replace the object).
    child = eval(in_child("dict(_tracing_under_test.provider.resource.attributes)"))
    parent = dict(tracing.provider.resource.attributes)  # type: ignore[union-attr]
    assert parent["process.pid"] == os.getpid()
    assert child["process.pid"] not in (os.getpid(), None)
    assert child["service.instance.id"] != parent["service.instance.id"]
    assert {k: v for k, v in child.items() if k not in ("process.pid", "service.instance.id")} == {
        k: v for k, v in parent.items() if k not in ("process.pid", "service.instance.id")
    }
    assert child["team"] == "payments"

    with tracekit.span("after the fork"):  # spans made in the child carry the child's pid
        pass
    span_pid = in_child(
        "_tracing_under_test.provider.get_tracer('t').start_span('s').resource.attributes['process.pid']"
    )
    assert int(span_pid) != os.getpid()


def test_given_resource_values_are_kept_in_the_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=pod-7")
    tracing = tracekit.configure(exporters=[])
    globals()["_tracing_under_test"] = tracing
    child = eval(in_child("dict(_tracing_under_test.provider.resource.attributes)"))
    assert child["service.instance.id"] == "pod-7"
    assert child["process.pid"] != os.getpid()
