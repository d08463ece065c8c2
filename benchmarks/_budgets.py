"""The performance budgets the issues set, checked against a run's results."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from benchmarks._harness import BenchmarkResult, paired_overhead

__all__ = ["BUDGETS", "Budget", "Verdict", "evaluate"]

Status = Literal["met", "not met", "not measured"]


@dataclass(frozen=True)
class Verdict:
    budget: Budget
    status: Status
    figures: str


@dataclass(frozen=True)
class Budget:
    issue: int
    benchmark: str
    text: str
    check: Callable[[Budget, BenchmarkResult], Verdict]


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.2f} µs"


def _unmeasured(budget: Budget, result: BenchmarkResult | None) -> Verdict | None:
    if result is None:
        return Verdict(budget, "not measured", "the benchmark was not run")
    if result.error is not None:
        return Verdict(budget, "not measured", f"the benchmark failed: {result.error}")
    tracekit = result.by_role("tracekit")
    if tracekit is None or not tracekit.available:
        reason = tracekit.unavailable if tracekit is not None else "no tracekit variant"
        return Verdict(budget, "not measured", f"tracekit {reason}")
    return None


def ratio_at_most(limit: float) -> Callable[[Budget, BenchmarkResult], Verdict]:
    """tracekit's overhead at most ``limit`` times the peer's."""

    def check(budget: Budget, result: BenchmarkResult) -> Verdict:
        tracekit, peer = result.overhead("tracekit"), result.overhead("peer")
        if tracekit is None or peer is None or peer <= 0:
            return Verdict(budget, "not measured", "no positive peer overhead to compare with")
        value = tracekit / peer
        status: Status = "met" if value <= limit else "not met"
        return Verdict(
            budget, status, f"tracekit +{_us(tracekit)}, peer +{_us(peer)}: {value:.2f}x (limit {limit}x)"
        )

    return check


def overhead_at_most(limit_seconds: float) -> Callable[[Budget, BenchmarkResult], Verdict]:
    """tracekit's overhead over bare at most ``limit_seconds``."""

    def check(budget: Budget, result: BenchmarkResult) -> Verdict:
        tracekit, peer = result.overhead("tracekit"), result.overhead("peer")
        if tracekit is None:
            return Verdict(budget, "not measured", "no tracekit figure")
        status: Status = "met" if tracekit <= limit_seconds else "not met"
        peer_text = f" (peer +{_us(peer)})" if peer is not None else ""
        return Verdict(
            budget, status, f"tracekit +{_us(tracekit)} over bare{peer_text}, limit {_us(limit_seconds)}"
        )

    return check


def above_variant_at_most(label: str, limit_seconds: float) -> Callable[[Budget, BenchmarkResult], Verdict]:
    """tracekit at most ``limit_seconds`` above the variant called ``label`` (paired by round)."""

    def check(budget: Budget, result: BenchmarkResult) -> Verdict:
        tracekit = result.by_role("tracekit")
        other = next((v for v in result.variants if v.label == label), None)
        if tracekit is None or other is None or not tracekit.available or not other.available:
            return Verdict(budget, "not measured", f"no figure for tracekit or for {label}")
        gap = paired_overhead(tracekit.per_op, other.per_op)
        status: Status = "met" if gap <= limit_seconds else "not met"
        return Verdict(
            budget, status, f"{gap * 1e3:+.1f} ms over `{label}`, limit +{limit_seconds * 1e3:.0f} ms"
        )

    return check


BUDGETS: tuple[Budget, ...] = (
    Budget(
        3, "decorator-sampled", "sampled `@traced` at most 1.1x OpenTelemetry's decorator", ratio_at_most(1.1)
    ),
    Budget(
        3,
        "decorator-unsampled",
        "`@traced` in an unsampled trace at most 1 µs over bare",
        overhead_at_most(1e-6),
    ),
    Budget(
        21,
        "decorator-unsampled-remote",
        "`@traced` under an unsampled remote parent at most 1 µs over bare",
        overhead_at_most(1e-6),
    ),
    Budget(
        3,
        "decorator-disabled",
        "`@traced` with tracing disabled at most 1 µs over bare",
        overhead_at_most(1e-6),
    ),
    Budget(4, "httpx-get", "httpx: tracekit's added cost at most half of the peer's", ratio_at_most(0.5)),
    Budget(
        4, "requests-get", "requests: tracekit's added cost at most half of the peer's", ratio_at_most(0.5)
    ),
    Budget(
        5,
        "fastapi-request",
        "FastAPI: tracekit's added cost at most a quarter of the peer's",
        ratio_at_most(0.25),
    ),
    Budget(
        21,
        "unsampled-request",
        "the whole request in an unsampled trace (SERVER + 2 HTTP + 2 queries + 1 Kafka send): "
        "at most 0.2x the contrib packages' overhead",
        ratio_at_most(0.2),
    ),
    Budget(
        6,
        "startup",
        "`tracekit run python -c pass` at most 50 ms over `import opentelemetry.sdk.trace`",
        above_variant_at_most("python -c 'import opentelemetry.sdk.trace'", 0.050),
    ),
    Budget(
        8,
        "sqlite3-select",
        "sqlite3: tracekit's added cost per query at most 0.7x the peer's, sanitizing included",
        ratio_at_most(0.7),
    ),
    Budget(
        8,
        "psycopg-select",
        "psycopg: tracekit's added cost per query at most 0.7x the peer's, sanitizing included",
        ratio_at_most(0.7),
    ),
    Budget(
        24,
        "fork-at-fork",
        "fork: tracekit adds at most 1 ms from `os.fork()` to the child's first line, over bare",
        overhead_at_most(1e-3),
    ),
)


def evaluate(results: Sequence[BenchmarkResult], budgets: Sequence[Budget] = BUDGETS) -> list[Verdict]:
    """One verdict per budget whose benchmark was run."""
    by_name: Mapping[str, BenchmarkResult] = {r.benchmark.name: r for r in results}
    verdicts = []
    for budget in budgets:
        result = by_name.get(budget.benchmark)
        if result is None:
            continue
        verdicts.append(_unmeasured(budget, result) or budget.check(budget, result))
    return verdicts
