"""Shared fixtures: a clean tracekit per test, and access to the machine's services."""

from __future__ import annotations

import importlib.util
import os
import socket
from collections.abc import Iterator

import pytest

import tracekit
from tracekit import _safety, _tracer
from tracekit._logging import forget_warnings
from tracekit.testing import OTLPReceiver, SpanRecorder, capture_spans

REQUIRE_SERVICES = os.environ.get("TRACEKIT_TEST_REQUIRE_SERVICES") == "1"


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is absent
        return False


#: tests/peers runs next to OpenTelemetry's contrib instrumentors, which pin opentelemetry-api
#: and -sdk to their own release: ``nox -s peers`` installs them in an environment of its own
#: (TRACEKIT_TEST_PEERS=1), where their absence is an error rather than an empty run.
_PEERS = ("opentelemetry.instrumentation.flask", "opentelemetry.instrumentation.fastapi")
if not all(_installed(module) for module in _PEERS):
    if os.environ.get("TRACEKIT_TEST_PEERS") == "1":
        raise RuntimeError(f"TRACEKIT_TEST_PEERS=1, but {', '.join(_PEERS)} are not all installed")
    collect_ignore = ["peers"]

# Every attribute an integration stores unvalidated in any test is checked against the SDK.
_tracer.VERIFY_KNOWN_ATTRIBUTES = True

#: Environment variables tracekit reads; cleared for every test so the developer's own
#: environment never changes a result.
_OTEL_PREFIXES = ("OTEL_", "TRACEKIT_")


@pytest.fixture(autouse=True)
def _clean_tracekit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(_OTEL_PREFIXES) and not name.startswith("TRACEKIT_TEST_"):
            monkeypatch.delenv(name)
    forget_warnings()
    yield
    tracekit.shutdown(timeout=5)
    forget_warnings()


@pytest.fixture(autouse=True)
def guarded_errors() -> Iterator[list[tuple[str, BaseException]]]:
    """Every error tracekit's guard caught during the test; any left at the end fails it.

    A test that forces internal failures on purpose checks this list, then clears it.
    Every integration is uninstrumented afterwards, so no test leaks patches into another.
    """
    errors: list[tuple[str, BaseException]] = []
    previous = _safety.set_error_hook(lambda integration, exc: errors.append((integration, exc)))
    yield errors
    tracekit.shutdown(timeout=5)
    tracekit.uninstrument()
    _safety.set_error_hook(previous)
    if errors:
        details = "; ".join(f"{integration}: {type(exc).__name__}: {exc}" for integration, exc in errors)
        pytest.fail(f"tracekit caught internal errors during the test: {details}", pytrace=False)


@pytest.fixture(scope="module")
def module_receiver() -> Iterator[OTLPReceiver]:
    """One OTLP receiver (HTTP and gRPC, on 127.0.0.1) for a test module."""
    with OTLPReceiver() as receiver:
        yield receiver


@pytest.fixture
def receiver(module_receiver: OTLPReceiver) -> OTLPReceiver:
    """The module's receiver, emptied for this test."""
    module_receiver.clear()
    return module_receiver


@pytest.fixture
def spans() -> Iterator[SpanRecorder]:
    """tracekit configured with an in-memory exporter; read ``spans.spans`` to inspect."""
    with capture_spans(service_name="tests") as recorder:
        yield recorder


def require_service(name: str, host: str, port: int, how_to_start: str) -> None:
    """Skip (or, under TRACEKIT_TEST_REQUIRE_SERVICES=1, fail) when ``host:port`` is closed."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        message = f"{name} is not reachable at {host}:{port} ({exc}); start it with: {how_to_start}"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)
