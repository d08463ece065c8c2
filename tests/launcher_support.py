"""Running real commands under ``tracekit run`` for the launcher and command-line tests.

Every process is started in a session of its own and its whole process group is stopped
at the end (SIGTERM, then SIGKILL), so no server, reloader or worker outlives its test.
Waits are bounded.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from tracekit.testing import OTLPReceiver

BIN = Path(sys.executable).parent
BOUND = 30.0


def script(name: str) -> str:
    """A console script installed next to this interpreter."""
    path = BIN / name
    if not path.exists():
        raise AssertionError(f"{name} is not installed next to {sys.executable}")
    return str(path)


def tracekit_command() -> list[str]:
    """The ``tracekit`` console script (``python -m tracekit`` where it is not installed)."""
    path = BIN / "tracekit"
    return [str(path)] if path.exists() else [sys.executable, "-m", "tracekit"]


def environment(receiver: OTLPReceiver | None = None, **extra: str) -> dict[str, str]:
    """This process's environment without OTEL_/TRACEKIT_ variables, exporting to ``receiver``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OTEL_", "TRACEKIT_")) or name.startswith("TRACEKIT_TEST_")
    }
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    if receiver is not None:
        env.update(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_endpoint,
            OTEL_BSP_SCHEDULE_DELAY="100",
            OTEL_SERVICE_NAME="launched",
        )
    env.update(extra)
    return env


def run(
    args: Sequence[str], env: Mapping[str, str], cwd: Path | None = None, timeout: float = BOUND
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` to completion in a process group of its own, killed if it outlives ``timeout``."""
    with subprocess.Popen(
        list(args),
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_group(process)
            stdout, stderr = process.communicate()
            raise AssertionError(f"{list(args)} did not finish within {timeout} s: {stderr}") from None
        finally:
            stop_group(process)
    return subprocess.CompletedProcess(list(args), process.returncode, stdout, stderr)


@contextmanager
def started(
    args: Sequence[str], env: Mapping[str, str], cwd: Path | None = None, *, stdout: bool = False
) -> Iterator[subprocess.Popen[str]]:
    """Start a long-running command; stop its whole process group on the way out.

    ``stdout``: keep the command's standard output readable (``wait_for_line``).
    """
    process = subprocess.Popen(
        list(args),
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        stop_group(process)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def stop_group(process: subprocess.Popen[str], grace: float = 5.0) -> None:
    """SIGTERM the process group of ``process``, then SIGKILL what is left after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            continue
        if sig is signal.SIGTERM:
            with suppress(ProcessLookupError):  # the leader is gone; workers it did not reap may not be
                os.killpg(process.pid, signal.SIGKILL)
        return


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """One GET on a fresh connection: ``(status, body)``."""
    request = urllib.request.Request(url, headers={"Connection": "close"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read().decode()


def wait_until_serving(url: str, process: subprocess.Popen[str], timeout: float = BOUND) -> str:
    """Poll ``url`` until it answers 200; return the body. Fails if the server exits first."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read() if process.stderr else ""
            raise AssertionError(f"the server exited with {process.returncode}: {stderr}")
        try:
            status, body = get(url, timeout=2.0)
            if status == 200:
                return body
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s (last error: {last})")


def wait_for_line(process: subprocess.Popen[str], expected: str, timeout: float = BOUND) -> None:
    """Read the process's output until the line ``expected``; fail if it exits or takes too long."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.1)
        if ready:
            line = process.stdout.readline()
            if line.strip() == expected:
                return
            if not line and process.poll() is not None:
                break
    stderr = process.stderr.read() if process.stderr is not None and process.poll() is not None else ""
    raise AssertionError(f"no {expected!r} line within {timeout} s (exit status {process.poll()}): {stderr}")


def write(directory: Path, name: str, text: str) -> Path:
    """Write ``text`` (dedented) to ``directory/name``; the path."""
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path
