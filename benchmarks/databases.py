"""Database clients: a small query, bare and instrumented.

* ``sqlite3-select``: ``cursor.execute("SELECT ?", (1,))`` and ``fetchone()`` on an in-memory
  database: no I/O, so the instrumentation's own cost is as visible as it gets;
* ``psycopg-select``: the same with psycopg 3 over a real round trip to the machine's
  PostgreSQL (``TRACEKIT_TEST_POSTGRES_*`` variables, default 127.0.0.1:5432, user postgres,
  database test); not available when the server is not reachable.

tracekit's integration is switched on with ``tracekit.instrument(name)`` and off with
``uninstrument`` around each of its rounds, sanitizing included (the default); the peer's
instrumentor is instrumented with a separate SDK provider and uninstrumented the same way.
Each variant opens a fresh connection after switching on (both sides hook ``connect``) and
checks, when switched off, that it exported exactly one span per query.
"""

from __future__ import annotations

import os
import socket
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
from benchmarks._harness import Benchmark, Scale, Session, Setup, Unavailable, Variant, loop

__all__ = ["benchmarks", "sqlite3_client"]


@dataclass(frozen=True)
class Client:
    """How to connect, query and close with one driver, and its OpenTelemetry peer."""

    integration: str
    peer: str
    connect: Callable[[], Any]
    query: Callable[[Any], object]
    close: Callable[[Any], object]
    instrumentor: Callable[[], Any]


def _setup(make: Callable[[], Client]) -> Setup:
    @contextmanager
    def setup() -> Iterator[Sequence[Variant]]:
        client = make()

        def session(switch: Switch, pipeline: Pipeline | None) -> Session:
            return handle_session(
                client.connect,
                lambda connection: loop(lambda: client.query(connection)),
                client.close,
                switch,
                pipeline,
            )

        with ExitStack() as stack:
            yield integration_variants(
                session,
                integration=client.integration,
                peer=client.peer,
                instrumentor=client.instrumentor,
                injects=False,
                tracekit_pipeline=stack.enter_context(tracekit_configured()),
                peer_provider_and_pipeline=stack.enter_context(peer_provider("batch")),
            )

    return setup


# ----------------------------------------------------------------------------- the clients


def sqlite3_client() -> Client:
    import sqlite3

    from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor

    def query(connection: Any) -> object:
        cursor = connection.cursor()
        cursor.execute("SELECT ?", (1,))
        return cursor.fetchone()

    return Client(
        "sqlite3",
        "opentelemetry-instrumentation-sqlite3",
        lambda: sqlite3.connect(":memory:"),
        query,
        lambda c: c.close(),
        SQLite3Instrumentor,
    )


def _postgres_dsn() -> str:
    host = os.environ.get("TRACEKIT_TEST_POSTGRES_HOST") or "127.0.0.1"
    port = int(os.environ.get("TRACEKIT_TEST_POSTGRES_PORT") or "5432")
    user = os.environ.get("TRACEKIT_TEST_POSTGRES_USER") or "postgres"
    database = os.environ.get("TRACEKIT_TEST_POSTGRES_DB") or "test"
    try:
        with socket.create_connection((host, port), timeout=2):
            pass
    except OSError as exc:
        raise Unavailable(f"PostgreSQL is not reachable at {host}:{port} ({exc})") from exc
    return f"host={host} port={port} user={user} dbname={database}"


def _psycopg() -> Client:
    import psycopg
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    dsn = _postgres_dsn()

    def query(connection: Any) -> object:
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s", (1,))
            return cursor.fetchone()

    return Client(
        "psycopg",
        "opentelemetry-instrumentation-psycopg",
        lambda: psycopg.connect(dsn, autocommit=True),
        query,
        lambda c: c.close(),
        PsycopgInstrumentor,
    )


def benchmarks(scale: Scale) -> list[Benchmark]:
    return [
        Benchmark(
            name="sqlite3-select",
            family="databases",
            title="sqlite3 `SELECT ?` in memory",
            description="`cursor.execute('SELECT ?', (1,))` and `fetchone()` on an in-memory sqlite3 "
            "database (a new cursor each query); one CLIENT span per query on the instrumented sides, "
            "tracekit's with its statement sanitized and summarized (cached per statement text).",
            switching="in process; `tracekit.instrument('sqlite3')` / `uninstrument` and the peer's "
            "`instrument(tracer_provider=...)` / `uninstrument()` around each of their rounds, a new "
            "connection each round",
            setup=_setup(sqlite3_client),
            rounds=scale.rounds(15),
            iterations=scale.iterations(4000),
            warmup=200,
        ),
        Benchmark(
            name="psycopg-select",
            family="databases",
            title="psycopg 3 `SELECT %s` to PostgreSQL",
            description="`cursor.execute('SELECT %s', (1,))` and `fetchone()` over a kept connection to the "
            "machine's PostgreSQL on 127.0.0.1 (autocommit); one CLIENT span per query on the instrumented "
            "sides. The server is another process, so the CPU time is the client's alone.",
            switching="in process; `tracekit.instrument('psycopg')` / `uninstrument` and the peer's "
            "`instrument(tracer_provider=...)` / `uninstrument()` around each of their rounds, a new "
            "connection each round",
            setup=_setup(_psycopg),
            rounds=scale.rounds(15),
            iterations=scale.iterations(1000),
            warmup=50,
        ),
    ]
