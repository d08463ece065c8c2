"""One variant's run: start the server, load each route, stop it, count what arrived."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.load import _procs, _wrk

__all__ = ["SERVERS", "VARIANTS", "Route", "RunResult", "Server", "Settings", "Variant", "run_variant"]

_BIN = Path(sys.executable).parent
_ROOT = Path(__file__).resolve().parents[2]
#: The ``traceparent`` of the unsampled-parent variant: the caller decided not to sample.
UNSAMPLED_PARENT = "traceparent: 00-5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174-00"


@dataclass(frozen=True)
class Route:
    path: str
    #: Spans tracekit makes for one request: SERVER, plus CLIENT for the query and the call.
    spans: int


@dataclass(frozen=True)
class Server:
    name: str
    label: str
    command: Callable[[int], list[str]]


SERVERS = {
    "uvicorn": Server(
        "uvicorn",
        "FastAPI on uvicorn (one process)",
        lambda port: [
            str(_BIN / "uvicorn"),
            "benchmarks.load.asgi:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
    ),
    "gunicorn": Server(
        "gunicorn",
        "Flask on gunicorn (one sync worker)",
        lambda port: [
            str(_BIN / "gunicorn"),
            "--workers",
            "1",
            "--worker-class",
            "sync",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "benchmarks.load.wsgi:app",
        ],
    ),
}
ROUTES = (Route("/plain", 1), Route("/db/42", 2), Route("/chain", 3))


@dataclass(frozen=True)
class Variant:
    name: str
    tracer: str | None
    ratio: float = 1.0
    unsampled_parent: bool = False

    @property
    def spans_expected(self) -> bool:
        """Whether every request's spans must arrive (tracekit, everything sampled)."""
        return self.tracer == "tracekit" and self.ratio == 1.0 and not self.unsampled_parent


VARIANTS = (
    Variant("untraced", None),
    Variant("tracekit 100%", "tracekit", 1.0),
    Variant("tracekit 10%", "tracekit", 0.1),
    Variant("tracekit 0%", "tracekit", 0.0),
    Variant("tracekit, unsampled parent", "tracekit", 0.1, unsampled_parent=True),
    Variant("OpenTelemetry agent 100%", "opentelemetry", 1.0),
    Variant("OpenTelemetry agent 10%", "opentelemetry", 0.1),
    Variant("ddtrace 100%", "ddtrace", 1.0),
    Variant("ddtrace 10%", "ddtrace", 0.1),
)


@dataclass(frozen=True)
class Settings:
    seconds: float = 5.0
    warmup: float = 1.0
    connections: int = 32
    server_cpu: int = 0
    load_cpu: int = 1
    dsn: str = "host=127.0.0.1 port=5432 dbname=test user=postgres"


@dataclass
class RunResult:
    variant: Variant
    routes: dict[str, _wrk.WrkResult] = field(default_factory=dict)
    #: Server CPU seconds (master and workers) spent during each route's measured run.
    cpu: dict[str, float] = field(default_factory=dict)
    rss: int = 0
    #: Every request the server answered, warm-up and readiness probe included.
    requests: int = 0
    spans_expected: int = 0
    spans_delivered: int = 0
    spans_unique: int = 0

    def cpu_per_request(self, route: str) -> float:
        return self.cpu[route] / self.routes[route].requests


class Sink:
    """Where a tracer's spans go, and how many have arrived."""

    def __init__(self, count: Callable[[], tuple[int, int]], clear: Callable[[], None]) -> None:
        self.count = count
        self.clear = clear


def _environment(
    variant: Variant, settings: Settings, stub_url: str, otlp: str, agent: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACEKIT_", "DD_"))}
    env.update(LOAD_DSN=settings.dsn, LOAD_STUB_URL=stub_url, PYTHONPATH=str(_ROOT), OTEL_SERVICE_NAME="load")
    ratio = f"{variant.ratio:g}"
    if variant.tracer in ("tracekit", "opentelemetry"):
        env.update(
            OTEL_EXPORTER_OTLP_ENDPOINT=otlp,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_TRACES_SAMPLER="parentbased_traceidratio",
            OTEL_TRACES_SAMPLER_ARG=ratio,
        )
        if variant.tracer == "opentelemetry":  # the agent's defaults also export metrics and logs
            env.update(OTEL_TRACES_EXPORTER="otlp", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    elif variant.tracer == "ddtrace":
        env.update(
            DD_SERVICE="load",
            DD_TRACE_AGENT_URL=agent,
            DD_TRACE_API_VERSION="v0.4",
            DD_TRACE_SAMPLING_RULES=f'[{{"sample_rate": {ratio}}}]',
            DD_REMOTE_CONFIGURATION_ENABLED="false",
            DD_INSTRUMENTATION_TELEMETRY_ENABLED="false",
            DD_TRACE_STARTUP_LOGS="false",
        )
    return env


_PREFIX = {
    None: [],
    "tracekit": [str(_BIN / "tracekit"), "run"],
    "opentelemetry": [str(_BIN / "opentelemetry-instrument")],
    "ddtrace": [str(_BIN / "ddtrace-run")],
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the server did not answer {url} within {timeout:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        raise RuntimeError("the server did not stop within 30 s of SIGTERM") from None


def _settled(sink: Sink, timeout: float = 20.0) -> tuple[int, int]:
    """The sink's counts once they stop moving (the last export is in flight at exit)."""
    last = sink.count()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = sink.count()
        if now == last:
            return now
        last = now
    return last


@dataclass
class _Served:
    base: str
    process: subprocess.Popen[bytes]
    headers: Sequence[str]
    settings: Settings

    def load(self, route: Route, seconds: float) -> _wrk.WrkResult:
        result = _wrk.run(
            self.base + route.path, seconds, self.settings.connections, self.headers, self.settings.load_cpu
        )
        if result.errors:
            raise RuntimeError(f"{route.path}: {result.errors} failed requests")
        return result

    def pids(self) -> list[int]:
        return _procs.tree(self.process.pid)


@contextmanager
def _serving(
    server: Server, variant: Variant, settings: Settings, stub_url: str, otlp: str, agent: str
) -> Iterator[_Served]:
    """``server`` under ``variant``, answering; stopped with SIGTERM at the end, as a deploy would."""
    port = _free_port()
    command = ["taskset", "-c", str(settings.server_cpu), *_PREFIX[variant.tracer], *server.command(port)]
    env = _environment(variant, settings, stub_url, otlp, agent)
    process = subprocess.Popen(command, env=env, cwd=_ROOT, start_new_session=True, stdin=subprocess.DEVNULL)
    served = _Served(
        f"http://127.0.0.1:{port}", process, [UNSAMPLED_PARENT] if variant.unsampled_parent else [], settings
    )
    try:
        _wait_ready(served.base + ROUTES[0].path, process)
        yield served
    finally:
        if process.poll() is None:
            _stop(process)
    if process.returncode not in (0, -signal.SIGTERM):
        raise RuntimeError(f"the server exited with {process.returncode}")


def run_variant(
    server: Server,
    variant: Variant,
    settings: Settings,
    stub_url: str,
    sinks: Mapping[str, Sink],
    otlp: str,
    agent: str,
) -> RunResult:
    """Start ``server`` under ``variant``, load each route, stop it and count the spans."""
    sink = sinks.get(variant.tracer or "")
    if sink is not None:
        sink.clear()
    result = RunResult(variant)
    # The readiness probe is one request to the first route.
    result.requests, expected = 1, ROUTES[0].spans
    with _serving(server, variant, settings, stub_url, otlp, agent) as served:
        for route in ROUTES:
            warm = served.load(route, settings.warmup)
            pids = served.pids()
            before = _procs.cpu_seconds(pids)
            measured = served.load(route, settings.seconds)
            result.cpu[route.path] = _procs.cpu_seconds(pids) - before
            result.routes[route.path] = measured
            result.requests += warm.requests + measured.requests
            expected += (warm.requests + measured.requests) * route.spans
        result.rss = _procs.rss_bytes(served.pids())
    if variant.spans_expected:
        result.spans_expected = expected
    if sink is not None:
        result.spans_delivered, result.spans_unique = _settled(sink)
    return result


def soak(
    server: Server,
    settings: Settings,
    stub_url: str,
    sinks: Mapping[str, Sink],
    otlp: str,
    agent: str,
    seconds: float,
    log: Callable[[str], None],
) -> str:
    """tracekit at 100% under load for ``seconds``, the routes in turn: memory over time, spans lost."""
    variant = Variant("tracekit 100%", "tracekit", 1.0)
    sink = sinks["tracekit"]
    sink.clear()
    chunk = 30.0
    samples: list[tuple[float, int]] = []
    requests, expected = 1, ROUTES[0].spans
    begun = time.monotonic()
    with _serving(server, variant, settings, stub_url, otlp, agent) as served:
        index = 0
        while time.monotonic() - begun < seconds:
            route = ROUTES[index % len(ROUTES)]
            done = served.load(route, chunk)
            requests += done.requests
            expected += done.requests * route.spans
            samples.append((time.monotonic() - begun, _procs.rss_bytes(served.pids())))
            log(f"soak {samples[-1][0]:.0f} s: RSS {samples[-1][1] / 2**20:.1f} MB, {requests:,} requests")
            index += 1
    delivered, unique = _settled(sink)
    rss = [value / 2**20 for _, value in samples]
    return (
        f"Soak ({server.label}, tracekit 100%, {seconds / 60:g} min, the three routes in turn "
        f"{chunk:g} s each): worker RSS {rss[0]:.1f} MB after the first {chunk:g} s, {rss[-1]:.1f} MB at "
        f"the end, {max(rss):.1f} MB at most; {requests:,} requests, {unique:,} of {expected:,} expected "
        f"spans delivered ({max(0, expected - unique):,} lost, {delivered - unique:,} repeated).\n"
    )
