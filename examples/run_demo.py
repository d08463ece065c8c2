"""The checkout demo (``nox -s demo``): three traced services, three checkouts, their traces.

It starts a Kafka-protocol broker, an OTLP receiver and the three services of
``examples/checkout`` on 127.0.0.1, each under ``tracekit run`` and configured only through
``OTEL_*`` variables. It then sends a normal, a slow and a failing checkout and prints each
trace as a waterfall, with the log lines of the failing request. Everything it starts is
stopped before it exits; every wait is bounded.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, the services export to that collector instead and
the script prints the trace ids to look up there.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from opentelemetry.trace import SpanKind, StatusCode

from tracekit._kafka_broker import running_broker
from tracekit.testing import OTLPReceiver

HERE = Path(__file__).resolve().parent / "checkout"
BIN = Path(sys.executable).parent
POSTGRES = os.environ.get("DEMO_POSTGRES", "host=127.0.0.1 port=5432 dbname=test user=postgres")
TOPIC = "order.created"
WORKER = "notification-worker"
CARTS = ("42", "slow", "fail")
#: Every wait of the demo is bounded by one of these.
READY_SECONDS = 30.0
SPANS_SECONDS = 20.0
#: A span whose own time (its duration minus its children's) passes this is marked slow.
SLOW_MS = 300.0
BAR_WIDTH = 28

SCHEMA = """
CREATE TABLE inventory (sku TEXT PRIMARY KEY, stock INTEGER NOT NULL, reserved INTEGER NOT NULL);
CREATE TABLE orders (order_id TEXT PRIMARY KEY, cart_id TEXT NOT NULL, status TEXT NOT NULL);
CREATE TABLE notifications (order_id TEXT NOT NULL, channel TEXT NOT NULL, body TEXT NOT NULL);
INSERT INTO inventory VALUES ('espresso-1', 100, 0);
"""


@dataclass
class Checkout:
    cart_id: str
    status: int
    body: dict[str, Any]

    @property
    def trace_id(self) -> str:
        return str(self.body.get("trace_id", ""))


@dataclass
class DemoResult:
    database: str
    checkouts: list[Checkout]
    spans: list[Any] = field(default_factory=list)  # ReceivedSpan values (empty with an outside collector)
    logs: list[dict[str, Any]] = field(default_factory=list)

    def trace(self, cart_id: str) -> list[Any]:
        [checkout] = [c for c in self.checkouts if c.cart_id == cart_id]
        return [span for span in self.spans if span.trace_id == checkout.trace_id]


# ----------------------------------------------------------------------------- infrastructure


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def database(say: Any, require_postgres: bool) -> Iterator[tuple[str, str]]:
    """(description, CHECKOUT_DATABASE_URL): a fresh schema in PostgreSQL, else a SQLite file."""
    try:
        import psycopg

        admin = psycopg.connect(POSTGRES, autocommit=True, connect_timeout=3)
    except Exception as exc:
        if require_postgres:
            raise
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        with tempfile.TemporaryDirectory(prefix="checkout-demo-") as directory:
            path = os.path.join(directory, "checkout.sqlite3")
            with contextlib.closing(sqlite3.connect(path)) as db:
                db.execute("PRAGMA journal_mode=WAL")  # the API and the worker write at the same time
                db.executescript(SCHEMA)
            say(f"PostgreSQL is not reachable ({reason}): using SQLite at {path}")
            yield "SQLite", f"sqlite:///{path}"
        return
    schema = f"checkout_demo_{uuid.uuid4().hex[:8]}"
    try:
        admin.execute(f"CREATE SCHEMA {schema}")
        admin.execute(f"SET search_path TO {schema}")
        for statement in filter(str.strip, SCHEMA.split(";")):
            admin.execute(statement)
        say(f"PostgreSQL at {POSTGRES} (schema {schema}, dropped at the end)")
        yield "PostgreSQL", f"{POSTGRES} options='-c search_path={schema}'"
    finally:
        admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.close()


def create_topic(bootstrap: str) -> None:
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(TOPIC, 1, 1)])
        finally:
            await admin.close()

    asyncio.run(asyncio.wait_for(create(), READY_SECONDS))


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.output().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and "trace_id" in record:
                    lines.append(record)
        return lines

    def stop(self) -> None:
        """SIGTERM to the service's process group, SIGKILL if it is still running 5 s later."""
        if self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


def tracekit_run() -> list[str]:
    script = BIN / "tracekit"
    return [str(script), "run"] if script.exists() else [sys.executable, "-m", "tracekit", "run"]


def start(name: str, command: list[str], env: dict[str, str], logs: Path) -> Service:
    log_path = logs / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            tracekit_run() + command,
            cwd=HERE,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Service(name, process, log_path)


def wait_ready(services: list[Service], urls: dict[str, str], deadline: float) -> None:
    pending = {service.name for service in services}
    while pending:
        for service in services:
            if service.name not in pending:
                continue
            if service.process.poll() is not None:
                raise RuntimeError(
                    f"{service.name} exited with {service.process.returncode}:\n{service.output()}"
                )
            if service.name in urls:
                with (
                    contextlib.suppress(OSError),
                    urllib.request.urlopen(urls[service.name], timeout=1) as response,
                ):
                    if response.status == 200:
                        pending.discard(service.name)
            elif " ready" in service.output():
                pending.discard(service.name)
        if pending and time.monotonic() > deadline:
            tails = "\n".join(f"--- {s.name}:\n{s.output()[-2000:]}" for s in services if s.name in pending)
            raise RuntimeError(f"not ready within {READY_SECONDS:.0f} s: {sorted(pending)}\n{tails}")
        time.sleep(0.1)


def post(url: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, method="POST", data=b"")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def wait_for_traces(receiver: OTLPReceiver, checkouts: list[Checkout], deadline: float) -> list[Any]:
    """Every span of the checkouts' traces: the root span arrived, and the worker's for placed orders."""

    def complete(spans: list[Any]) -> bool:
        for checkout in checkouts:
            trace = [s for s in spans if s.trace_id == checkout.trace_id]
            if not any(s.parent_span_id is None for s in trace):
                return False
            placed = checkout.status == 200
            # a placed order's trace ends with the worker's database call
            if placed and not any(s.kind is SpanKind.CLIENT and _service(s) == WORKER for s in trace):
                return False
        return True

    while not complete(receiver.spans):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the traces did not arrive within {SPANS_SECONDS:.0f} s")
        time.sleep(0.1)
    # spans still on their way (an export batch ends every 200 ms): wait for a quiet moment
    count, quiet_since = receiver.span_count, time.monotonic()
    while time.monotonic() - quiet_since < 0.6 and time.monotonic() < deadline:
        time.sleep(0.1)
        if receiver.span_count != count:
            count, quiet_since = receiver.span_count, time.monotonic()
    return receiver.spans


# ----------------------------------------------------------------------------- the waterfall


def _service(span: Any) -> str:
    return str(span.resource.get("service.name", "?"))


def _ms(span: Any) -> float:
    return (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6


def self_time_ms(span: Any, spans: list[Any]) -> float:
    """The span's duration minus the time covered by its children."""
    children = sorted(
        (s.start_time_unix_nano, s.end_time_unix_nano) for s in spans if s.parent_span_id == span.span_id
    )
    covered, cursor = 0, span.start_time_unix_nano
    for start, end in children:
        start, end = max(start, cursor), min(end, span.end_time_unix_nano)
        if end > start:
            covered += end - start
            cursor = end
    return _ms(span) - covered / 1e6


def waterfall(spans: list[Any]) -> list[str]:
    """One line per span, children under their parents in start order, with a time bar."""
    ids = {span.span_id for span in spans}
    children: dict[str | None, list[Any]] = {}
    for span in sorted(spans, key=lambda s: s.start_time_unix_nano):
        parent = span.parent_span_id if span.parent_span_id in ids else None
        children.setdefault(parent, []).append(span)
    start = min(s.start_time_unix_nano for s in spans)
    total = max(max(s.end_time_unix_nano for s in spans) - start, 1)
    slow = [s for s in spans if self_time_ms(s, spans) >= SLOW_MS]
    errors = [s for s in spans if s.status_code is StatusCode.ERROR]
    lines: list[str] = []
    stack = [(span, 0) for span in reversed(children.get(None, []))]
    while stack:
        span, depth = stack.pop()
        offset = min(round((span.start_time_unix_nano - start) / total * BAR_WIDTH), BAR_WIDTH - 1)
        width = max(1, round((span.end_time_unix_nano - span.start_time_unix_nano) / total * BAR_WIDTH))
        bar = (" " * offset + "█" * width)[:BAR_WIDTH].ljust(BAR_WIDTH)
        kind = span.kind.name if span.kind is not None else "?"
        name = "  " * depth + span.name
        status = span.status_code.name
        marks = []
        if span in slow:
            marks.append(f"◀ SLOW ({self_time_ms(span, spans):.0f} ms in this span)")
        if span in errors:
            error_type = span.attributes.get("error.type", "")
            origin = not any(s.parent_span_id == span.span_id for s in errors)
            marks.append(f"◀ ERROR {error_type}{' (where it started)' if origin else ''}".rstrip())
        line = f"{_service(span):<20} {name:<42} {kind:<8} |{bar}| {_ms(span):7.1f} ms {status:<5}"
        lines.append(f"{line} {' '.join(marks)}".rstrip())
        stack.extend((child, depth + 1) for child in reversed(children.get(span.span_id, [])))
    return lines


def report(result: DemoResult, out: TextIO) -> None:
    for checkout in result.checkouts:
        spans = result.trace(checkout.cart_id)
        services = sorted({_service(s) for s in spans})
        print(
            f"\nPOST /checkout/{checkout.cart_id} -> {checkout.status}   trace {checkout.trace_id}"
            f"   {len(spans)} spans from {', '.join(services)}",
            file=out,
        )
        for line in waterfall(spans):
            print("  " + line, file=out)
    failing_logs(result, out)


def failing_logs(result: DemoResult, out: TextIO) -> None:
    for checkout in [c for c in result.checkouts if c.status >= 500]:
        print(f"\nLog lines of the failing checkout (trace_id={checkout.trace_id}):", file=out)
        for record in result.logs:
            if record["trace_id"] == checkout.trace_id:
                print(
                    f"  {record['time']} {record['service']:<12} {record['level']:<7} {record['message']}"
                    f"  span_id={record['span_id']}",
                    file=out,
                )


# ----------------------------------------------------------------------------- the demo


def run(out: TextIO = sys.stdout, *, require_postgres: bool = False) -> DemoResult:
    """Run the whole demo, print it to ``out``, return what was sent and received."""

    def say(message: str) -> None:
        print(message, file=out, flush=True)

    begun = time.monotonic()
    collector = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    services: list[Service] = []
    with contextlib.ExitStack() as stack:
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="checkout-demo-logs-")))
        description, database_url = stack.enter_context(database(say, require_postgres))
        broker = stack.enter_context(running_broker("tansu"))
        create_topic(broker.bootstrap)
        say(f"Kafka-protocol broker (Tansu) on {broker.bootstrap}")
        if collector:
            receiver = None
            say(f"OTEL_EXPORTER_OTLP_ENDPOINT is set: the services export to {collector}")
        else:
            receiver = stack.enter_context(OTLPReceiver())
            collector = receiver.http_endpoint
            say(f"OTLP receiver on {collector}")
        checkout_port, payment_port = _free_port(), _free_port()
        base = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=demo",
            "CHECKOUT_DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        }
        stack.callback(lambda: [service.stop() for service in services])
        services.append(
            start(
                "checkout-api",
                [
                    "uvicorn",
                    "checkout_api:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(checkout_port),
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                {
                    **base,
                    "OTEL_SERVICE_NAME": "checkout-api",
                    "OTEL_PROPAGATORS": "tracecontext,baggage,b3multi",
                    "PAYMENT_API_URL": f"http://127.0.0.1:{payment_port}",
                },
                logs,
            )
        )
        services.append(
            start(
                "payment-api",
                ["python", "payment_api.py"],
                {
                    **base,
                    "OTEL_SERVICE_NAME": "payment-api",
                    "OTEL_PROPAGATORS": "b3multi",
                    "PORT": str(payment_port),
                },
                logs,
            )
        )
        services.append(
            start(
                "notification-worker",
                ["python", "notification_worker.py"],
                {
                    **base,
                    "OTEL_SERVICE_NAME": "notification-worker",
                    "OTEL_PROPAGATORS": "tracecontext,baggage",
                },
                logs,
            )
        )
        wait_ready(
            services,
            {
                "checkout-api": f"http://127.0.0.1:{checkout_port}/healthz",
                "payment-api": f"http://127.0.0.1:{payment_port}/healthz",
            },
            time.monotonic() + READY_SECONDS,
        )
        say(
            f"checkout-api (FastAPI, W3C + B3) on :{checkout_port}, payment-api (Flask, B3 only) on "
            f":{payment_port}, notification-worker (aiokafka), {description}: all under `tracekit run`"
        )
        checkouts = []
        for cart_id in CARTS:
            status, body = post(f"http://127.0.0.1:{checkout_port}/checkout/{cart_id}")
            checkouts.append(Checkout(cart_id, status, body))
        result = DemoResult(description, checkouts)
        if receiver is not None:
            result.spans = wait_for_traces(receiver, checkouts, time.monotonic() + SPANS_SECONDS)
        for service in services:
            service.stop()
        result.logs = sorted(
            (line for service in services for line in service.log_lines()), key=lambda r: r["time"]
        )
    if receiver is not None:
        report(result, out)
    else:
        for checkout in result.checkouts:
            say(f"POST /checkout/{checkout.cart_id} -> {checkout.status}: look up trace {checkout.trace_id}")
        failing_logs(result, out)
    say(f"\nDone in {time.monotonic() - begun:.1f} s; everything the demo started is stopped.")
    return result


def main() -> int:
    result = run()
    expected = {"42": 200, "slow": 200, "fail": 502}
    got = {c.cart_id: c.status for c in result.checkouts}
    if got != expected:
        print(f"unexpected answers: {got} (expected {expected})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
