"""guard(): tracekit's own errors are caught, logged once per integration, and never reach the caller."""

from __future__ import annotations

import logging

import pytest

import tracekit
from tracekit import _registry, _safety, _state
from tracekit._safety import guard


def test_the_context_manager_swallows_and_reports(
    caplog: pytest.LogCaptureFixture, guarded_errors: list[tuple[str, BaseException]]
) -> None:
    reached = []
    with caplog.at_level(logging.WARNING, logger="tracekit"):
        for attempt in range(3):
            with guard("demo"):
                raise RuntimeError(f"boom {attempt}")
            reached.append(attempt)
    assert reached == [0, 1, 2]
    assert [(name, str(exc)) for name, exc in guarded_errors] == [
        ("demo", "boom 0"),
        ("demo", "boom 1"),
        ("demo", "boom 2"),
    ]
    warnings = [record for record in caplog.records if record.name == "tracekit"]
    assert len(warnings) == 1  # once per integration
    assert warnings[0].levelno == logging.WARNING
    assert "demo integration" in warnings[0].getMessage()
    assert warnings[0].exc_info is not None
    guarded_errors.clear()


def test_each_integration_logs_once(caplog: pytest.LogCaptureFixture, guarded_errors: list[object]) -> None:
    with caplog.at_level(logging.WARNING, logger="tracekit"):
        for name in ("one", "two", "one", "two"):
            with guard(name):
                raise ValueError(name)
    assert len([r for r in caplog.records if r.name == "tracekit"]) == 2
    guarded_errors.clear()


def test_the_decorator_returns_none_on_failure(guarded_errors: list[object]) -> None:
    @guard("demo")
    def compute(value: int) -> int:
        if value < 0:
            raise ValueError("negative")
        return value * 2

    assert compute(4) == 8
    assert compute(-1) is None
    assert len(guarded_errors) == 1
    guarded_errors.clear()


def test_base_exceptions_are_not_swallowed(guarded_errors: list[object]) -> None:
    with pytest.raises(KeyboardInterrupt), guard("demo"):
        raise KeyboardInterrupt
    assert guarded_errors == []


def test_without_a_hook_errors_are_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    previous = _safety.set_error_hook(None)
    try:
        with caplog.at_level(logging.WARNING, logger="tracekit"), guard("quiet"):
            raise RuntimeError("x")
    finally:
        _safety.set_error_hook(previous)
    assert len(caplog.records) == 1


def test_a_failing_patch_never_breaks_instrument_or_the_import(guarded_errors: list[object]) -> None:
    broken = _registry.Integration("broken", ("json",), "tracekit.integrations.does_not_exist")
    _registry.enable(broken)  # json is imported: the hook runs at once and fails inside the guard
    assert [name for name, _ in guarded_errors] == ["broken"]
    _state.wanted_integrations.discard("broken")
    _state.integration_status.pop("broken", None)
    guarded_errors.clear()


def test_unknown_names_raise_config_error_from_code() -> None:
    with pytest.raises(tracekit.ConfigError, match="unknown integration 'httpz'"):
        tracekit.instrument("httpz")
    with pytest.raises(tracekit.ConfigError, match="unknown integration 'nope'"):
        tracekit.configure(instrument=["httpx", "nope"])
    assert _state.current is None


def test_unknown_names_from_the_environment_warn(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "urllib, nope ,aiohttp-client")
    with caplog.at_level(logging.INFO, logger="tracekit"):
        tracekit.configure(exporters=[])
    messages = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any("unknown integration 'nope'" in message and "ignored" in message for message in messages)
    status = _registry.status()
    assert status["urllib"] == ("skipped", "disabled by OTEL_PYTHON_DISABLED_INSTRUMENTATIONS")
    assert status["aiohttp_client"] == ("skipped", "disabled by OTEL_PYTHON_DISABLED_INSTRUMENTATIONS")
    assert "urllib" not in _state.wanted_integrations
    assert {"httpx", "requests", "urllib3", "threading"} <= _state.wanted_integrations


def test_instrument_false_and_a_list(monkeypatch: pytest.MonkeyPatch) -> None:
    tracekit.configure(exporters=[], instrument=False)
    assert _state.wanted_integrations == set()
    tracekit.shutdown()
    tracekit.configure(exporters=[], instrument=["httpx", "requests"], disabled_instrumentations=["requests"])
    assert _state.wanted_integrations == {"httpx"}
    tracekit.shutdown()
    assert _state.wanted_integrations == set()


def test_older_library_versions_are_skipped_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import httpx

    monkeypatch.setattr(_registry, "_installed_version", lambda distribution: "0.22.0")
    with caplog.at_level(logging.WARNING, logger="tracekit"):
        tracekit.instrument("httpx")
    assert "__tracekit_patched_httpx__" not in vars(httpx)
    state, reason = _registry.status()["httpx"]
    assert state == "skipped"
    assert reason == "httpx 0.22.0 is older than 0.23, the oldest version the httpx integration supports"
    assert [r.getMessage() for r in caplog.records] == [f"tracekit: not instrumenting httpx: {reason}"]


def test_an_opentelemetry_instrumentor_wins_with_an_info_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import sys
    import types

    import requests

    fake = types.ModuleType("opentelemetry.instrumentation.requests")

    class RequestsInstrumentor:
        _instance = None

    RequestsInstrumentor._instance = types.SimpleNamespace(_is_instrumented_by_opentelemetry=True)  # type: ignore[assignment]
    fake.RequestsInstrumentor = RequestsInstrumentor  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "opentelemetry.instrumentation.requests", fake)
    with caplog.at_level(logging.INFO, logger="tracekit"):
        tracekit.instrument("requests")
    assert "__tracekit_patched_requests__" not in vars(requests)
    (record,) = caplog.records
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        "tracekit: not instrumenting requests: already instrumented by "
        "opentelemetry.instrumentation.requests.RequestsInstrumentor"
    )
