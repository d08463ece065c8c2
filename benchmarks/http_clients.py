"""HTTP clients: a GET over a kept-alive connection to a local server, bare and instrumented.

The server (``benchmarks._http_server``) runs in its own process on 127.0.0.1. tracekit's
integration is switched on with ``tracekit.instrument(name)`` and off with
``tracekit.uninstrument(name)`` around each of its rounds; the peer's instrumentor is
instrumented with a separate SDK provider and uninstrumented the same way, and injects
with OpenTelemetry's default propagator (tracekit's is the global one otherwise). Each variant
opens a fresh client after switching on (so it sees whatever the switch patched) and checks,
when switched off, that it exported exactly one span per request.

A request costs a few hundred microseconds and its CPU time moves by tens of them from round
to round, so these benchmarks run 41 rounds of 300 requests (two identical bare variants
differed by up to 16 µs in rounds of 100 requests, by up to 5 µs in rounds of 400);
``benchmarks.instructions`` counts the same requests' instructions, which do not move.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from benchmarks._common import (
    Pipeline,
    Switch,
    handle_session,
    integration_variants,
    peer_provider,
    tracekit_configured,
)
from benchmarks._harness import Benchmark, Scale, Session, Setup, Variant, loop

__all__ = ["benchmarks", "local_server"]


@contextmanager
def local_server() -> Iterator[str]:
    """The URL of a fresh ``benchmarks._http_server`` process; stopped on exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._http_server"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}/items/42"
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class Client:
    """How to make, use and close one library's client."""

    library: str
    open: Callable[[], Any]
    get: Callable[[Any, str], object]
    close: Callable[[Any], object]
    instrumentor: Callable[[], Any]


def _setup(client: Client) -> Setup:
    @contextmanager
    def setup() -> Iterator[Sequence[Variant]]:
        with ExitStack() as stack:
            url = stack.enter_context(local_server())

            def session(switch: Switch, pipeline: Pipeline | None) -> Session:
                return handle_session(
                    client.open,
                    lambda handle: loop(lambda: client.get(handle, url)),
                    client.close,
                    switch,
                    pipeline,
                )

            yield integration_variants(
                session,
                integration=client.library,
                peer=f"opentelemetry-instrumentation-{client.library}",
                instrumentor=client.instrumentor,
                injects=True,
                tracekit_pipeline=stack.enter_context(tracekit_configured()),
                peer_provider_and_pipeline=stack.enter_context(peer_provider("batch")),
            )

    return setup


# ----------------------------------------------------------------------------- the clients


def _httpx() -> Client:
    import httpx
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    def get(client: httpx.Client, url: str) -> object:
        return client.get(url).raise_for_status()

    return Client(
        "httpx", lambda: httpx.Client(trust_env=False), get, lambda c: c.close(), HTTPXClientInstrumentor
    )


def _requests() -> Client:
    import requests
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    def open_session() -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        return session

    def get(session: requests.Session, url: str) -> object:
        response = session.get(url)
        response.raise_for_status()
        return response

    return Client("requests", open_session, get, lambda s: s.close(), RequestsInstrumentor)


def _urllib3() -> Client:
    import urllib3
    from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor

    def get(pool: urllib3.PoolManager, url: str) -> object:
        response = pool.request("GET", url)
        if response.status != 200:
            raise RuntimeError(f"unexpected status {response.status}")
        return response.data

    return Client("urllib3", urllib3.PoolManager, get, lambda p: p.clear(), URLLib3Instrumentor)


def benchmarks(scale: Scale) -> list[Benchmark]:
    clients = (
        (_httpx, "httpx", "`httpx.Client.get()`"),
        (_requests, "requests", "`requests.Session.get()`"),
        (_urllib3, "urllib3", "`urllib3.PoolManager.request()`"),
    )
    return [
        Benchmark(
            name=f"{library}-get",
            family="http-clients",
            title=f"{library} GET to a local server",
            description=f"{call} of a 15-byte JSON body from a keep-alive HTTP/1.1 server on 127.0.0.1; "
            "one CLIENT span per request on the instrumented sides. The server runs in another process, "
            "so the CPU time is the client's alone; the wall time includes the server's answer.",
            switching=f"in process; `tracekit.instrument({library!r})` / `uninstrument` and the peer's "
            "`instrument(tracer_provider=...)` / `uninstrument()` around each of their rounds, a new "
            "client each round",
            setup=_lazy_setup(make),
            rounds=scale.rounds(41),
            iterations=scale.iterations(300),
            warmup=20,
        )
        for make, library, call in clients
    ]


def _lazy_setup(make: Callable[[], Client]) -> Setup:
    """Import the client library and its peer only when the benchmark runs."""

    @contextmanager
    def setup() -> Iterator[Sequence[Variant]]:
        with _setup(make())() as variants:
            yield variants

    return setup
