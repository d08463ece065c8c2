"""Contract tests for the private OpenTelemetry names in ``tracekit._compat``.

Each pins what the installed SDK does, so a release that changes it fails here first.
"""

from __future__ import annotations

import inspect

import pytest
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.resources import Resource

from tracekit import _compat


def test_the_sdk_providers_fork_hook_is_the_method_tracekit_overrides() -> None:
    source = inspect.getsource(sdk_trace.TracerProvider.__init__)
    if "register_at_fork" in source:  # opentelemetry-sdk 1.4x; 1.39 registers none
        assert "_handle_fork" in source
        assert hasattr(sdk_trace.TracerProvider, "_handle_fork")
    assert _compat.TracerProvider._handle_fork is not getattr(sdk_trace.TracerProvider, "_handle_fork", None)


def test_the_overridden_fork_hook_only_replaces_the_tracers_lock() -> None:
    provider = _compat.TracerProvider(resource=Resource({"service.name": "s"}))
    before = dict(provider.resource.attributes)
    lock = getattr(provider, "_tracers_lock", None)
    provider._handle_fork()
    assert dict(provider.resource.attributes) == before
    if lock is not None:
        assert provider._tracers_lock is not lock
        assert provider._tracers_lock.acquire(blocking=False)


def test_resource_attributes_are_replaced_in_place() -> None:
    resource = Resource({"service.name": "s", "process.pid": 1}, "https://opentelemetry.io/schemas/1.26.0")
    provider = _compat.TracerProvider(resource=resource)
    span = provider.get_tracer("t").start_span("s")
    assert _compat.replace_resource_attributes(resource, {"service.name": "s", "process.pid": 2})
    assert dict(span.resource.attributes) == {"service.name": "s", "process.pid": 2}
    assert span.resource.schema_url == "https://opentelemetry.io/schemas/1.26.0"
    assert provider.resource.attributes["process.pid"] == 2


def test_a_resource_without_the_private_mapping_is_left_alone() -> None:
    class Other:
        attributes = {"process.pid": 1}
        schema_url = ""

    assert _compat.replace_resource_attributes(Other(), {"process.pid": 2}) is False  # type: ignore[arg-type]


def test_the_span_field_reader_reads_what_the_public_properties_say() -> None:
    from opentelemetry.trace import SpanKind, Status, StatusCode

    read = _compat.span_fields_reader()
    assert read is _compat._read_private  # the SDK installed here has the private fields
    provider = _compat.TracerProvider(resource=Resource({"service.name": "s"}))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("parent"):
        span = tracer.start_span("child", kind=SpanKind.CLIENT, attributes={"a": "b", "n": 1})
    span.set_status(Status(StatusCode.ERROR, "why"))
    span.end()
    fast, public = _compat._read_private(span), _compat._read_public(span)  # type: ignore[arg-type]
    assert fast[:6] == public[:6]
    assert dict(fast[6]) == dict(public[6]) == {"a": "b", "n": 1}
    assert fast[7:] == public[7:]


def test_the_span_field_reader_falls_back_to_the_public_properties(monkeypatch: pytest.MonkeyPatch) -> None:
    import operator

    # An SDK whose spans keep their fields under other names: the probe fails, the public path is used.
    monkeypatch.setattr(_compat, "_private_span_fields", operator.attrgetter("_no_such_field"))
    assert _compat.span_fields_reader() is _compat._read_public


def test_trace_state_keeps_the_entries_as_given() -> None:
    # The installed API's TraceState reads them back from the private dict tracekit fills.
    assert _compat._GIVEN_ENTRIES
    entries = [("foo@", "1"), ("0z", "2"), ("k" * 256, "3"), ("ot", "th:c")]
    state = _compat.trace_state(entries)
    assert list(state.items()) == entries
    assert state["foo@"] == "1"
    assert "0z" in state
    assert len(state) == 4
    assert state.to_header() == f"foo@=1,0z=2,{'k' * 256}=3,ot=th:c"


def test_trace_state_falls_back_to_the_apis_constructor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_compat, "_GIVEN_ENTRIES", False)
    state = _compat.trace_state([("foo@", "1"), ("bar", "2")])
    # Level 1's grammar, as the API checks it: the Level 2 key is dropped, the rest kept.
    assert list(state.items()) == [("bar", "2")]


def test_only_the_contrib_mark_set_to_true_counts_as_instrumented() -> None:
    class App:
        pass

    app = App()
    assert not _compat.instrumented_by_contrib(app)
    app._is_instrumented_by_opentelemetry = "yes"  # type: ignore[attr-defined]
    assert not _compat.instrumented_by_contrib(app)
    app._is_instrumented_by_opentelemetry = True  # type: ignore[attr-defined]
    assert _compat.instrumented_by_contrib(app)
