"""The timing harness: variants of one workload, interleaved in rounds, and their statistics.

A :class:`Benchmark` yields its variants (``bare``, ``tracekit``, the peer, and optional
reference variants) from a context manager that sets up what they share. Each round runs
every variant once, in an order rotated from round to round, so machine drift and any
first-in-round effect fall on all variants alike. A variant is a context manager too:
entering it switches its instrumentation on (and builds what it needs), exiting switches
it off again, so only one variant is ever active.

A variant that cannot run here (its tracekit API does not exist yet, a command is missing)
raises :class:`Unavailable`, or fails with ``ImportError``/``AttributeError`` while
entering; it is reported as not available and the other variants still run.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from itertools import repeat
from typing import Literal

__all__ = [
    "Batch",
    "Benchmark",
    "BenchmarkResult",
    "Clock",
    "Role",
    "Scale",
    "Session",
    "Setup",
    "Summary",
    "Unavailable",
    "Variant",
    "VariantResult",
    "fixed",
    "loop",
    "paired_overhead",
    "ratio",
    "rotated",
    "run_benchmark",
    "summarize",
]

Role = Literal["bare", "tracekit", "peer", "reference"]

#: ``cpu`` is this process's CPU time (every thread, so export workers count too): what the
#: workload costs, unmoved by other processes competing for the cores. ``wall`` is elapsed
#: time, for workloads that wait on another process (a server, a child process).
Clock = Literal["cpu", "wall"]

#: Runs the workload ``n`` times.
Batch = Callable[[int], object]
#: Switches a variant on, yields its batch, switches it off.
Session = Callable[[], AbstractContextManager[Batch]]


class Unavailable(Exception):
    """This variant cannot run in this environment; the message says why."""


@dataclass(frozen=True)
class Scale:
    """How much work each benchmark does: the full run, or a fast smoke run (``--quick``)."""

    quick: bool = False

    def rounds(self, full: int) -> int:
        return min(full, 3) if self.quick else full

    def iterations(self, full: int) -> int:
        return max(1, full // 20) if self.quick else full


@dataclass(frozen=True)
class Variant:
    """One way of running the workload: ``session()`` switches it on and yields the batch."""

    label: str
    role: Role
    session: Session


#: Builds what the variants share, yields them, tears it down.
Setup = Callable[[], AbstractContextManager[Sequence[Variant]]]


@dataclass(frozen=True)
class Benchmark:
    """One workload, measured in every variant that ``setup()`` yields."""

    name: str
    family: str
    title: str
    description: str
    switching: str
    setup: Setup
    rounds: int
    iterations: int
    warmup: int
    unit: Literal["µs", "ms"] = "µs"
    clock: Clock = "cpu"
    #: Also report the median on the other clock (not for child processes: their CPU is not ours).
    show_other_clock: bool = True


@dataclass(frozen=True)
class Summary:
    median: float
    low: float
    high: float


@dataclass
class VariantResult:
    """Seconds per operation in each round on the benchmark's clock (and the other), or why there are none."""

    label: str
    role: Role
    per_op: list[float] = field(default_factory=list)
    other_clock: list[float] = field(default_factory=list)
    unavailable: str | None = None

    @property
    def available(self) -> bool:
        return self.unavailable is None and bool(self.per_op)


@dataclass
class BenchmarkResult:
    benchmark: Benchmark
    variants: list[VariantResult]
    error: str | None = None

    def by_role(self, role: Role) -> VariantResult | None:
        return next((v for v in self.variants if v.role == role), None)

    def overhead(self, role: Role) -> float | None:
        """Median over rounds of (variant - bare), in seconds per operation."""
        bare, other = self.by_role("bare"), self.by_role(role)
        if bare is None or other is None or not bare.available or not other.available:
            return None
        return paired_overhead(other.per_op, bare.per_op)

    def overhead_of(self, variant: VariantResult) -> float | None:
        bare = self.by_role("bare")
        if bare is None or not bare.available or not variant.available:
            return None
        return paired_overhead(variant.per_op, bare.per_op)

    def tracekit_ratio(self) -> float | None:
        """tracekit's overhead divided by the peer's."""
        tracekit, peer = self.overhead("tracekit"), self.overhead("peer")
        if tracekit is None or peer is None:
            return None
        return ratio(tracekit, peer)


# ----------------------------------------------------------------------------- statistics


def summarize(samples: Sequence[float]) -> Summary:
    """Median, minimum and maximum of ``samples`` (at least one)."""
    if not samples:
        raise ValueError("summarize() needs at least one sample")
    return Summary(statistics.median(samples), min(samples), max(samples))


def paired_overhead(samples: Sequence[float], bare: Sequence[float]) -> float:
    """Median of the round-by-round differences ``samples[i] - bare[i]``.

    Pairing each round with the bare run of the same round cancels drift that hits a
    whole round (a busy neighbour, a frequency change) instead of letting it widen the gap
    between two independent medians.
    """
    if len(samples) != len(bare) or not samples:
        raise ValueError("paired_overhead() needs two equally long, non-empty sample lists")
    return statistics.median(s - b for s, b in zip(samples, bare, strict=True))


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or ``None`` when the denominator is not positive."""
    if denominator <= 0:
        return None
    return numerator / denominator


def rotated(items: Sequence[int], round_index: int) -> list[int]:
    """``items`` rotated left by ``round_index``: each variant leads one round in turn."""
    if not items:
        return []
    shift = round_index % len(items)
    return [*items[shift:], *items[:shift]]


# ----------------------------------------------------------------------------- running


def loop(operation: Callable[[], object]) -> Batch:
    """A batch that calls ``operation`` ``n`` times."""

    def batch(n: int) -> None:
        for _ in repeat(None, n):
            operation()

    return batch


@contextmanager
def fixed(batch: Batch) -> Iterator[Batch]:
    """A session with nothing to switch on or off."""
    yield batch


_UNAVAILABLE = (Unavailable, ImportError, AttributeError)


def _time_once(variant: Variant, iterations: int, warmup: int) -> tuple[float, float]:
    """Switch ``variant`` on, warm it up, time ``iterations`` operations, switch it off.

    Returns seconds per operation of CPU time and of wall time.
    """
    with variant.session() as batch:
        if warmup:
            batch(warmup)
        gc.collect()
        cpu, wall = time.process_time(), time.perf_counter()
        batch(iterations)
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
    return cpu / iterations, wall / iterations


def _describe(exc: BaseException) -> str:
    if isinstance(exc, Unavailable):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _first_runs(variants: Sequence[Variant], results: list[VariantResult], warmup: int) -> None:
    """Run each variant once, untimed: imports, caches, connections, and whether it runs at all."""
    for variant, result in zip(variants, results, strict=True):
        try:
            _time_once(variant, max(1, warmup), 0)
        except _UNAVAILABLE as exc:
            result.unavailable = "not available: " + _describe(exc)
        except Exception as exc:
            if variant.role == "bare":
                raise
            result.unavailable = "failed: " + _describe(exc)


def _rounds(benchmark: Benchmark, variants: Sequence[Variant], results: list[VariantResult]) -> None:
    active = [i for i, result in enumerate(results) if result.unavailable is None]
    for round_index in range(benchmark.rounds):
        for i in rotated(active, round_index):
            result = results[i]
            if result.unavailable is not None:
                continue
            try:
                cpu, wall = _time_once(variants[i], benchmark.iterations, benchmark.warmup)
            except Exception as exc:
                if variants[i].role == "bare":
                    raise
                result.unavailable = f"failed in round {round_index + 1}: " + _describe(exc)
                result.per_op.clear()
                continue
            primary, other = (cpu, wall) if benchmark.clock == "cpu" else (wall, cpu)
            result.per_op.append(primary)
            result.other_clock.append(other)


def run_benchmark(benchmark: Benchmark, log: Callable[[str], None] = print) -> BenchmarkResult:
    """Measure every variant of ``benchmark`` in interleaved rounds.

    A variant that is not available, or that fails, is reported as such and the others go
    on; only a failing bare variant (or set-up) fails the whole benchmark.
    """
    try:
        with benchmark.setup() as variants:
            results = [VariantResult(v.label, v.role) for v in variants]
            _first_runs(variants, results, benchmark.warmup)
            _rounds(benchmark, variants, results)
            return BenchmarkResult(benchmark, results)
    except Exception as exc:
        log(f"  {benchmark.name}: error: {_describe(exc)}")
        return BenchmarkResult(benchmark, [], error=_describe(exc))
