"""Drive a server with wrk and read what it printed."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["WrkResult", "parse", "run"]

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50: float
    p99: float
    #: Non-2xx answers plus socket errors (connect, read, write, timeout).
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def _duration(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"wrk printed a duration it is not known to print: {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def parse(output: str) -> WrkResult:
    """The figures of one ``wrk --latency`` run; ValueError naming what is missing."""
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m),", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if done is None or p50 is None or p99 is None:
        raise ValueError(f"wrk's output lacks the request count or the latency distribution:\n{output}")
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx[1])
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if sockets:
        errors += sum(int(count) for count in sockets.groups())
    return WrkResult(
        requests=int(done[1]),
        seconds=float(done[2]) * _UNITS[done[3]],
        p50=_duration(p50[1]),
        p99=_duration(p99[1]),
        errors=errors,
    )


def run(url: str, seconds: float, connections: int, headers: Sequence[str], cpu: int) -> WrkResult:
    """One run of wrk (one thread) pinned to ``cpu``."""
    command = ["taskset", "-c", str(cpu), "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    for header in headers:
        command += ["-H", header]
    completed = subprocess.run(
        [*command, url], capture_output=True, text=True, timeout=seconds + 60, check=True
    )
    return parse(completed.stdout)
