"""``python -m benchmarks [--quick] [--output PATH] [NAME ...]``.

NAME is a family (``decorator``, ``span``, ``propagation``, ``http-clients``,
``http-servers``, ``kafka``, ``databases``, ``whole-request``, ``startup``, ``export``, ``fork``,
``instructions``) or one benchmark of a family (``decorator-sampled``, ``httpx-get``, ...); no NAME
runs everything. A full run of everything rewrites ``docs/performance.md``; other runs print their
tables and write a file only when ``--output`` is given.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks import (
    databases,
    export,
    fork,
    http_clients,
    http_servers,
    instructions,
    kafka,
    manual_spans,
    propagation,
    startup,
    whole_request,
)
from benchmarks._budgets import evaluate
from benchmarks._harness import Benchmark, BenchmarkResult, Scale, run_benchmark
from benchmarks._report import (
    ROOT,
    Section,
    load_average,
    render_benchmark,
    render_budgets,
    render_document,
)

#: Families timed by the harness, in the order they run.
TIMED: dict[str, Callable[[Scale], list[Benchmark]]] = {
    "decorator": manual_spans.decorator_benchmarks,
    "span": manual_spans.span_benchmarks,
    "propagation": propagation.benchmarks,
    "http-clients": http_clients.benchmarks,
    "http-servers": http_servers.benchmarks,
    "kafka": kafka.benchmarks,
    "databases": databases.benchmarks,
    "whole-request": whole_request.benchmarks,
    "startup": startup.benchmarks,
}
#: Families with tables of their own (and, for budgets, timed results made their own way).
CUSTOM: dict[str, Callable[[Scale, Callable[[str], None]], Sequence[BenchmarkResult | Section]]] = {
    "export": export.run,
    "fork": fork.run,
    "instructions": instructions.run,
}
DEFAULT_OUTPUT = ROOT / "docs" / "performance.md"


def _clean_environment() -> list[str]:
    """Drop the caller's ``OTEL_*`` / ``TRACEKIT_*`` variables: both sides run on their defaults
    plus what each benchmark sets, whatever the shell exported."""
    removed = [name for name in os.environ if name.startswith(("OTEL_", "TRACEKIT_", "FASTAPI_OTEL_"))]
    for name in removed:
        del os.environ[name]
    return removed


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help="families or benchmarks to run (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="a fast smoke run: few rounds, few iterations")
    parser.add_argument("--output", type=Path, help="write the Markdown report here")
    parser.add_argument("--list", action="store_true", help="list the families and benchmarks, run nothing")
    return parser.parse_args(argv)


def _run(
    timed: dict[str, list[Benchmark]], wanted: set[str], scale: Scale
) -> list[BenchmarkResult | Section]:
    """Every selected benchmark, in family order (everything when ``wanted`` is empty)."""
    sections: list[BenchmarkResult | Section] = []
    for family, group in timed.items():
        for benchmark in group:
            if wanted and family not in wanted and benchmark.name not in wanted:
                continue
            _log(f"{benchmark.name} ...")
            begun = time.perf_counter()
            sections.append(run_benchmark(benchmark, _log))
            _log(f"{benchmark.name}: {time.perf_counter() - begun:.1f} s")
    for family, run in CUSTOM.items():
        if not wanted or family in wanted:
            _log(f"{family} ...")
            begun = time.perf_counter()
            sections.extend(run(scale, _log))
            _log(f"{family}: {time.perf_counter() - begun:.1f} s")
    return sections


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parse(argv)
    scale = Scale(quick=args.quick)
    timed = {family: build(scale) for family, build in TIMED.items()}
    if args.list:
        for family, group in timed.items():
            print(family + ": " + ", ".join(b.name for b in group))
        print("\n".join(CUSTOM))
        return 0
    known = set(timed) | set(CUSTOM) | {b.name for group in timed.values() for b in group}
    unknown = [name for name in args.names if name not in known]
    if unknown:
        print(f"unknown: {', '.join(unknown)}; known: {', '.join(sorted(known))}", file=sys.stderr)
        return 2
    for name in _clean_environment():
        _log(f"ignoring {name} from the environment")

    load_before = load_average()
    started = time.perf_counter()
    sections = _run(timed, set(args.names), scale)
    elapsed = time.perf_counter() - started
    verdicts = evaluate([s for s in sections if isinstance(s, BenchmarkResult)])

    for section in sections:
        print(render_benchmark(section) if isinstance(section, BenchmarkResult) else section.body)
    if verdicts:
        print("Budgets:\n" + render_budgets(verdicts) + "\n")
    print(f"Total: {elapsed:.0f} s")

    output = args.output
    if output is None and not args.names and not args.quick:
        output = DEFAULT_OUTPUT
    if output is not None:
        output.write_text(render_document(sections, verdicts, argv, elapsed, load_before), encoding="utf-8")
        _log(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
