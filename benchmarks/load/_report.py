"""The load benchmark's tables and budgets, and the block of docs/performance.md they fill."""

from __future__ import annotations

import platform
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from benchmarks.load._run import ROUTES, RunResult, Server, Settings

__all__ = ["BLOCKS", "BUDGETS", "kept_blocks", "one_line", "render", "write_block"]

#: The blocks of docs/performance.md this benchmark writes: the tables, and the soak's line.
BLOCKS = ("load", "soak")
UNTRACED = "untraced"
#: (route, variant, limit in µs of server CPU added per request, the agent variant compared with)
BUDGETS = (
    ("/plain", "tracekit 100%", 60, "OpenTelemetry agent 100%"),
    ("/plain", "tracekit 10%", 15, "OpenTelemetry agent 10%"),
    ("/plain", "tracekit 0%", 5, "OpenTelemetry agent 10%"),
    ("/db/42", "tracekit 100%", 150, "OpenTelemetry agent 100%"),
    ("/db/42", "tracekit 10%", 25, "OpenTelemetry agent 10%"),
)
AGENT_RATIO_LIMIT = 0.15


def one_line(result: RunResult) -> str:
    parts = [
        f"{route} {r.rate:,.0f}/s {result.cpu_per_request(route) * 1e6:.0f} µs"
        for route, r in result.routes.items()
    ]
    spans = f"{result.spans_delivered} spans" + (
        f" of {result.spans_expected}" if result.spans_expected else ""
    )
    return "; ".join(parts) + f"; {spans}; RSS {result.rss / 2**20:.0f} MB"


def _paired(runs: Sequence[RunResult], base: Sequence[RunResult], route: str) -> float:
    return statistics.median(
        r.cpu_per_request(route) - b.cpu_per_request(route) for r, b in zip(runs, base, strict=True)
    )


def _ratio(runs: Sequence[RunResult], base: Sequence[RunResult], route: str) -> float:
    return statistics.median(
        r.routes[route].rate / b.routes[route].rate for r, b in zip(runs, base, strict=True)
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def _route_table(by_variant: Mapping[str, Sequence[RunResult]], route: str) -> list[str]:
    base = by_variant[UNTRACED]
    lines = [
        "| variant | req/s | vs untraced | p50 | p99 | server CPU / request | added |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, runs in by_variant.items():
        rate = statistics.median(r.routes[route].rate for r in runs)
        cpu = statistics.median(r.cpu_per_request(route) for r in runs)
        p50 = statistics.median(r.routes[route].p50 for r in runs)
        p99 = statistics.median(r.routes[route].p99 for r in runs)
        added = "" if name == UNTRACED else f"{_paired(runs, base, route) * 1e6:+.0f} µs"
        ratio = "1" if name == UNTRACED else f"{_ratio(runs, base, route):.2f}x"
        lines.append(
            f"| {name} | {rate:,.0f} | {ratio} | {_ms(p50)} | {_ms(p99)} | {cpu * 1e6:.0f} µs | {added} |"
        )
    return lines


def _spans_table(by_variant: Mapping[str, Sequence[RunResult]]) -> list[str]:
    lines = [
        "| variant | requests answered | spans delivered | per request | expected | lost | worker RSS |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, runs in by_variant.items():
        requests = sum(r.requests for r in runs)
        delivered = sum(r.spans_unique for r in runs)
        rss = statistics.median(r.rss for r in runs) / 2**20
        if name == UNTRACED:
            lines.append(f"| {name} | {requests:,} | | | | | {rss:.0f} MB |")
            continue
        expected = sum(r.spans_expected for r in runs)
        lost = sum(max(0, r.spans_expected - r.spans_unique) for r in runs)
        duplicates = sum(r.spans_delivered - r.spans_unique for r in runs)
        shown = f"{delivered:,}" + (f" (+{duplicates} repeated)" if duplicates else "")
        lines.append(
            f"| {name} | {requests:,} | {shown} | {delivered / requests:.2f} | "
            f"{f'{expected:,}' if expected else '—'} | {lost if expected else '—'} | {rss:.0f} MB |"
        )
    return lines


def _budgets(results: Mapping[str, Mapping[str, Sequence[RunResult]]]) -> list[str]:
    lines = []
    for server, by_variant in results.items():
        base = by_variant.get(UNTRACED)
        for route, name, limit, agent in BUDGETS:
            runs = by_variant.get(name)
            if base is None or runs is None:
                continue
            added = _paired(runs, base, route) * 1e6
            verdicts = [f"{added:+.0f} µs (limit {limit} µs): {'met' if added <= limit else 'not met'}"]
            if agent in by_variant:
                peer = _paired(by_variant[agent], base, route) * 1e6
                if peer <= 0:
                    verdicts.append(f"the agent added {peer:+.0f} µs: no ratio")
                else:
                    share = added / peer
                    verdicts.append(
                        f"{share:.2f}x the agent's {peer:+.0f} µs (limit {AGENT_RATIO_LIMIT}x): "
                        f"{'met' if share <= AGENT_RATIO_LIMIT else 'not met'}"
                    )
            lines.append(f"- {server} `{route}`, {name}: " + "; ".join(verdicts))
        for name, runs in by_variant.items():
            if any(r.spans_expected for r in runs):
                lost = sum(max(0, r.spans_expected - r.spans_unique) for r in runs)
                lines.append(
                    f"- {server}, {name}: no span lost under load: "
                    + ("met" if lost == 0 else f"not met ({lost} lost)")
                )
    return lines


def render(
    results: Mapping[str, Mapping[str, Sequence[RunResult]]],
    servers: Sequence[Server],
    settings: Settings,
    rounds: int,
    elapsed: float,
    command: str,
) -> str:
    parts = [
        "## A service under load",
        "",
        f"Made by `{command}` in {elapsed / 60:.0f} min on {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}: {rounds} interleaved rounds, "
        f"{settings.seconds:g} s measured per route after {settings.warmup:g} s of warm-up, wrk with "
        f"one thread and {settings.connections} connections. The server is pinned to core "
        f"{settings.server_cpu}; wrk, the stub, the receivers and PostgreSQL to core "
        f"{settings.load_cpu}. Medians over rounds; *added* is the "
        "server CPU per request over the untraced server's, paired round by round. tracekit and the "
        "OpenTelemetry agent export OTLP/HTTP to tracekit's receiver; ddtrace sends to a stand-in agent. "
        "On a shared virtual machine the untraced server's own CPU per request drifts by tens of percent "
        "within minutes, so differences of a few tens of µs between variants are within the noise.",
        "",
        "Budgets (issue 29):",
        "",
        *_budgets(results),
        "",
    ]
    for server in servers:
        by_variant = results.get(server.name)
        if not by_variant:
            continue
        parts += [f"### {server.label}", ""]
        for route in ROUTES:
            parts += [f"`{route.path}`:", "", *_route_table(by_variant, route.path), ""]
        parts += ["Spans and memory:", "", *_spans_table(by_variant), ""]
    return "\n".join(parts).rstrip() + "\n"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}: begin (written by nox -s load) -->", f"<!-- {name}: end -->"


def write_block(path: Path, name: str, text: str) -> None:
    """Put ``text`` between the ``name`` markers in ``path`` (appended with them if absent)."""
    begin, end = _markers(name)
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{begin}\n{text}{end}\n"
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        current = head + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        current = current.rstrip("\n") + "\n\n" + block
    path.write_text(current, encoding="utf-8")


def kept_blocks(path: Path) -> str:
    """The marked blocks of ``path`` with their markers: a full ``nox -s bench`` run keeps them."""
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    kept = []
    for name in BLOCKS:
        begin, end = _markers(name)
        if begin in current and end in current:
            kept.append(begin + current.split(begin, 1)[1].split(end, 1)[0] + end + "\n")
    return "\n".join(kept)
