"""``python -m benchmarks.load [--rounds N] [--seconds S] [--server NAME] [--soak S] [--output PATH]``.

Each round starts every variant's server once, in an order that rotates from round to round,
and loads its three routes in turn with wrk (one thread, 32 connections): a warm-up, then the
measured run. The server is pinned to one core; wrk, the loopback stub, the OTLP receiver, the
Datadog agent stand-in and PostgreSQL to the other, so that the server's core does the
application's and the tracer's work and nothing else. Per route and variant it reports the
requests per second and their ratio to the untraced server, p50 and p99, and the server CPU
per request (read from ``/proc``), with what the variant adds over the untraced server paired
round by round; per variant, the spans delivered against those expected and the worker's
resident memory. ``--soak`` runs tracekit at 100% for that long instead and reports its memory
over time and the spans lost. The tables replace the marked block of docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from benchmarks._harness import rotated
from benchmarks.load import _procs, _report
from benchmarks.load._agent import DatadogAgentStub
from benchmarks.load._run import SERVERS, VARIANTS, RunResult, Settings, Sink, run_variant, soak

_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = _ROOT / "docs" / "performance.md"
#: The loopback stub outlives any run (it also stops when this process closes its stdin).
_STUB_LIFETIME = 6 * 3600


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per variant (default 5)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per route (default 5)")
    parser.add_argument("--server", choices=sorted(SERVERS), action="append", help="default: both")
    parser.add_argument("--variant", action="append", help="variant names to run (default: all)")
    parser.add_argument("--soak", type=float, metavar="SECONDS", help="soak tracekit at 100%% instead")
    parser.add_argument("--output", type=Path, help=f"where to write the tables (default {DEFAULT_OUTPUT})")
    parser.add_argument("--no-output", action="store_true", help="print the tables only")
    return parser.parse_args(argv)


def _stub() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, "-m", "benchmarks._http_server", str(_STUB_LIFETIME)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=_ROOT,
    )
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return process, f"http://127.0.0.1:{port}/"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if os.cpu_count() is None or (os.cpu_count() or 0) < 2:
        _log("the load benchmark needs two cores: one for the server, one for the load")
        return 2
    from tracekit._receiver import OTLPReceiver

    # SIGTERM unwinds like Ctrl-C, so that PostgreSQL's affinity and the stub are restored.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    settings = Settings(seconds=args.seconds)
    servers = [SERVERS[name] for name in (args.server or sorted(SERVERS, reverse=True))]
    variants = [v for v in VARIANTS if not args.variant or v.name in args.variant or v.tracer is None]
    os.sched_setaffinity(0, {settings.load_cpu})
    started = time.monotonic()
    command = "nox -s load" + (
        ""
        if argv is None and len(sys.argv) == 1
        else " -- " + " ".join(sys.argv[1:] if argv is None else argv)
    )
    with ExitStack() as stack:
        pinned = stack.enter_context(_procs.pinned_postgres({settings.load_cpu}))
        _log(f"PostgreSQL: {pinned} processes pinned to core {settings.load_cpu}")
        receiver = stack.enter_context(OTLPReceiver(max_requests=1_000_000, max_connections=256))
        agent = stack.enter_context(DatadogAgentStub())
        stub, stub_url = _stub()
        stack.callback(stub.wait, 10)
        stack.callback(stub.stdin.close)  # type: ignore[union-attr]

        def otlp_count() -> tuple[int, int]:
            unique = {
                span.span_id
                for request in receiver.requests
                for resource in request.message.resource_spans
                for scope in resource.scope_spans
                for span in scope.spans
            }
            return receiver.span_count, len(unique)

        def otlp_clear() -> None:
            receiver.clear()

        sink = Sink(otlp_count, otlp_clear)
        sinks = {
            "tracekit": sink,
            "opentelemetry": sink,
            "ddtrace": Sink(lambda: (agent.spans, agent.unique_spans()), agent.clear),
        }
        otlp = receiver.http_endpoint
        if args.soak:
            soak_text = soak(servers[0], settings, stub_url, sinks, otlp, agent.url, args.soak, _log)
            print(soak_text)
            if not args.no_output:
                _report.write_block(args.output or DEFAULT_OUTPUT, "soak", soak_text)
            return 0
        results: dict[str, dict[str, list[RunResult]]] = {}
        for server in servers:
            by_variant: dict[str, list[RunResult]] = {v.name: [] for v in variants}
            for round_index in range(args.rounds):
                for variant in rotated(variants, round_index):
                    _log(f"{server.name} round {round_index + 1}/{args.rounds}: {variant.name}")
                    result = run_variant(server, variant, settings, stub_url, sinks, otlp, agent.url)
                    by_variant[variant.name].append(result)
                    _log("  " + _report.one_line(result))
            results[server.name] = by_variant
            # What is done so far, in the log: a later failure does not lose it.
            _log(_report.render(results, servers, settings, args.rounds, time.monotonic() - started, command))
    text = _report.render(results, servers, settings, args.rounds, time.monotonic() - started, command)
    print(text)
    if not args.no_output:
        output = args.output or DEFAULT_OUTPUT
        _report.write_block(output, "load", text)
        _log(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
