"""The benchmark harness's bookkeeping, on synthetic data: nothing here is timed.

The figures in docs/performance.md and its met / not met lines are only as good as the
interleaving, the statistics and the budget checks that produce them; these tests pin them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._budgets import Budget, evaluate, overhead_at_most, ratio_at_most
from benchmarks._harness import (
    Batch,
    Benchmark,
    BenchmarkResult,
    Role,
    Unavailable,
    Variant,
    VariantResult,
    paired_overhead,
    ratio,
    rotated,
    run_benchmark,
    summarize,
)
from benchmarks._report import Section


def test_rotation_gives_every_variant_the_lead_once_per_cycle() -> None:
    assert [rotated([0, 1, 2], r) for r in range(4)] == [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 1, 2]]
    assert rotated([], 3) == []


def test_summary_is_median_min_max() -> None:
    summary = summarize([3.0, 1.0, 2.0, 10.0])
    assert (summary.median, summary.low, summary.high) == (2.5, 1.0, 10.0)
    with pytest.raises(ValueError, match="at least one"):
        summarize([])


def test_overhead_pairs_rounds_so_drift_cancels() -> None:
    # The machine slows down in round 3 for every variant alike: the paired difference is
    # unaffected, while the difference of the medians would not be.
    bare = [1.0, 1.0, 5.0]
    traced = [2.0, 2.0, 6.0]
    assert paired_overhead(traced, bare) == 1.0
    with pytest.raises(ValueError, match="equally long"):
        paired_overhead([1.0], [1.0, 2.0])


def test_ratio_refuses_a_non_positive_denominator() -> None:
    assert ratio(1.0, 4.0) == 0.25
    assert ratio(1.0, 0.0) is None
    assert ratio(1.0, -2.0) is None


def _recording_variant(label: str, role: Role, calls: list[tuple[str, int]], fail: bool = False) -> Variant:
    @contextmanager
    def session() -> Iterator[Batch]:
        if fail:
            raise Unavailable("not built yet")

        def batch(n: int) -> None:
            calls.append((label, n))

        yield batch

    return Variant(label, role, session)


def _benchmark(variants: Sequence[Variant], rounds: int = 3) -> Benchmark:
    @contextmanager
    def setup() -> Iterator[Sequence[Variant]]:
        yield variants

    return Benchmark(
        "synthetic", "test", "Synthetic", "", "none", setup, rounds=rounds, iterations=7, warmup=2
    )


def test_run_interleaves_rounds_and_reports_unavailable_variants() -> None:
    calls: list[tuple[str, int]] = []
    variants = [
        _recording_variant("bare", "bare", calls),
        _recording_variant("tracekit", "tracekit", calls, fail=True),
        _recording_variant("peer", "peer", calls),
    ]
    result = run_benchmark(_benchmark(variants), log=lambda message: None)

    # One untimed availability run each, then per round: warm-up (2) and timed (7) runs,
    # in an order rotated from round to round.
    assert calls[:2] == [("bare", 2), ("peer", 2)]
    timed = [label for label, n in calls[2:] if n == 7]
    assert timed == ["bare", "peer", "peer", "bare", "bare", "peer"]
    assert [len(v.per_op) for v in result.variants] == [3, 0, 3]
    tracekit = result.by_role("tracekit")
    assert tracekit is not None
    assert tracekit.unavailable == "not available: not built yet"
    assert result.tracekit_ratio() is None


def _result(per_role: dict[Role, list[float]], name: str = "synthetic") -> BenchmarkResult:
    benchmark = _benchmark([])
    benchmark = Benchmark(name, "test", "", "", "", benchmark.setup, 3, 1, 0)
    return BenchmarkResult(
        benchmark, [VariantResult(role, role, samples) for role, samples in per_role.items()]
    )


def test_budget_verdicts() -> None:
    result = _result({"bare": [1e-6] * 3, "tracekit": [2e-6] * 3, "peer": [4e-6] * 3})
    assert result.tracekit_ratio() == pytest.approx(1 / 3)
    budgets = [
        Budget(0, "synthetic", "ratio met", ratio_at_most(0.5)),
        Budget(0, "synthetic", "ratio not met", ratio_at_most(0.25)),
        Budget(0, "synthetic", "overhead met", overhead_at_most(1e-6)),
        Budget(0, "synthetic", "overhead not met", overhead_at_most(0.5e-6)),
        Budget(0, "elsewhere", "skipped: benchmark not run", ratio_at_most(1.0)),
    ]
    verdicts = evaluate([result], budgets)
    assert [(v.budget.text, v.status) for v in verdicts] == [
        ("ratio met", "met"),
        ("ratio not met", "not met"),
        ("overhead met", "met"),
        ("overhead not met", "not met"),
    ]


def test_budget_is_not_measured_without_a_tracekit_figure() -> None:
    result = _result({"bare": [1e-6] * 3, "peer": [4e-6] * 3})
    [verdict] = evaluate([result], [Budget(0, "synthetic", "ratio", ratio_at_most(0.5))])
    assert verdict.status == "not measured"


def test_instructions_per_operation_cancel_what_every_run_shares(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import instructions

    # 5,000 instructions and 500 misses for start-up and teardown, then fixed counts per operation.
    per_operation = {
        "bare": (1_000_000, 40_000),
        "tracekit": (1_150_000, 44_000),
        "peer": (1_600_000, 56_000),
    }

    def count(benchmark: str, role: str, operations: int) -> instructions.Counts:
        executed, missed = per_operation[role]
        return instructions.Counts(5_000 + executed * operations, 500 + missed * operations)

    monkeypatch.setattr(instructions.shutil, "which", lambda name: "/usr/bin/valgrind")
    monkeypatch.setattr(instructions, "count", count)
    [section] = instructions.run(instructions.Scale(quick=True), log=lambda message: None)
    assert (
        "| `requests-get` | 1,000k / 40.0k | 1,150k / 44.0k | 1,600k / 56.0k "
        "| +150.0k vs +600.0k: 0.25 | +4.0k vs +16.0k: 0.25 |"
    ) in section.body


def test_instructions_say_why_they_were_not_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import instructions

    def count(benchmark: str, role: str, operations: int) -> instructions.Counts:
        if role == "peer":
            raise RuntimeError("ImportError: no peer")
        return instructions.Counts(1_000 * operations, 10 * operations)

    monkeypatch.setattr(instructions.shutil, "which", lambda name: "/usr/bin/valgrind")
    monkeypatch.setattr(instructions, "count", count)
    [section] = instructions.run(instructions.Scale(quick=True), log=lambda message: None)
    assert "| `httpx-get` | 1k / 0.0k | 1k / 0.0k | failed: ImportError: no peer |  |  |" in section.body

    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)
    [section] = instructions.run(instructions.Scale(quick=True), log=lambda message: None)
    assert "Not measured: valgrind is not installed" in section.body


def test_callgrind_totals_are_read_from_its_output_file(tmp_path: Path) -> None:
    from benchmarks import instructions

    output = tmp_path / "callgrind.out"
    output.write_text("version: 1\nevents: Ir I1mr D1mr D1mw\nfl=x\n1 2 3 4 5\nsummary: 100 7 8 9\n")
    assert instructions._totals(output) == {"Ir": 100, "I1mr": 7, "D1mr": 8, "D1mw": 9}


def test_fork_percentile_is_nearest_rank() -> None:
    from benchmarks import fork

    assert fork.p95([float(n) for n in range(1, 101)]) == 95.0
    assert fork.p95([7.0]) == 7.0


class _FakeReceiver:
    """Stands in for tracekit's OTLPReceiver: what a fork run would have sent it."""

    http_endpoint = "http://127.0.0.1:4318"

    def __init__(self) -> None:
        self.spans: list[SimpleNamespace] = []

    def __enter__(self) -> _FakeReceiver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    @property
    def span_count(self) -> int:
        return len(self.spans)

    def clear(self) -> None:
        self.spans = []


def test_fork_family_tables_and_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import fork

    # Microseconds from fork() to the child's first line, the same for every child of a variant.
    at_fork = {"bare": 2_000, "tracekit": 2_600, "tracekit-cold": 2_500, "opentelemetry": 4_000}
    receiver = _FakeReceiver()

    def run_child(variant: str, url: str, forks: int) -> dict[str, object]:
        if variant == "tracekit-cold":
            raise RuntimeError("a child sent nothing within 15 s (killed): hung after fork")
        pids = list(range(1_000, 1_000 + forks))
        if variant != "bare":
            # The parent's own span first; the SDK's resource has no process.pid.
            own = [{"process.pid": pid} if variant == "tracekit" else {} for pid in [1, *pids]]
            receiver.spans = [SimpleNamespace(resource=resource) for resource in own]
        figures = {name: [1_000] * forks for name in fork.FIELDS}
        figures["fork_to_child"] = [at_fork[variant] * 1_000] * forks
        return {"pids": pids, "figures": figures}

    monkeypatch.setattr(fork, "_receiver", lambda forks: receiver)
    monkeypatch.setattr(fork, "_run_child", run_child)
    result, section = fork.run(fork.Scale(quick=True), log=lambda message: None)

    assert isinstance(result, BenchmarkResult)
    assert result.overhead("tracekit") == pytest.approx(600e-6)
    assert result.overhead("peer") == pytest.approx(2_000e-6)
    cold = result.variants[2]
    assert cold.unavailable == "failed: a child sent nothing within 15 s (killed): hung after fork"
    [verdict] = [v for v in evaluate([result]) if v.budget.benchmark == "fork-at-fork"]
    assert verdict.status == "met"
    assert "tracekit +600.00 µs over bare (peer +2000.00 µs)" in verdict.figures

    assert isinstance(section, Section)
    assert "| tracekit | 2600 µs / 2600 µs |" in section.body
    assert "| 33 spans for 30 children; 30 with their own `process.pid` |" in section.body
    assert "| 33 spans for 30 children; no `process.pid` |" in section.body
    assert "| tracekit, no span yet in the parent | failed: a child sent nothing" in section.body


# --- the service-under-load benchmark (benchmarks/load): its parsing, pairing and report block

_WRK_OUTPUT = """Running 1s test @ http://127.0.0.1:8899/plain
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     8.09ms    8.01ms  72.91ms   91.43%
    Req/Sec   574.20    177.04   767.00     70.00%
  Latency Distribution
     50%  570.00us
     75%    8.80ms
     90%   13.75ms
     99%    1.20s
  578 requests in 1.01s, 293.70KB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:    570.54
Transfer/sec:    289.90KB
"""


def test_wrk_output_is_read_with_its_units_and_errors() -> None:
    from benchmarks.load._wrk import parse

    result = parse(_WRK_OUTPUT)
    assert (result.requests, result.seconds) == (578, 1.01)
    assert result.p50 == pytest.approx(570e-6)
    assert result.p99 == pytest.approx(1.2)
    assert result.errors == 8
    assert result.rate == pytest.approx(578 / 1.01)
    with pytest.raises(ValueError, match="latency distribution"):
        parse(_WRK_OUTPUT.replace("     50%  570.00us\n", ""))


def _load_run(name: str, cpu_per_request: float, rate: float, expected: int = 0, unique: int = 0) -> object:
    from benchmarks.load._run import ROUTES, RunResult, Variant
    from benchmarks.load._wrk import WrkResult

    result = RunResult(Variant(name, None if name == "untraced" else "tracekit"))
    for route in ROUTES:
        result.routes[route.path] = WrkResult(int(rate), 1.0, 0.01, 0.02, 0)
        result.cpu[route.path] = cpu_per_request * int(rate)
    result.requests, result.spans_expected, result.spans_unique = int(rate), expected, unique
    result.spans_delivered, result.rss = unique, 64 * 2**20
    return result


def test_load_budgets_pair_rounds_and_count_lost_spans() -> None:
    from benchmarks.load._report import render
    from benchmarks.load._run import SERVERS, Settings

    # Round 2 is slower for everyone: paired, tracekit 10% adds 10 µs both times.
    results = {
        "uvicorn": {
            "untraced": [_load_run("untraced", 500e-6, 2000), _load_run("untraced", 900e-6, 1000)],
            "tracekit 10%": [_load_run("tracekit 10%", 510e-6, 1900), _load_run("tracekit 10%", 910e-6, 950)],
            "tracekit 100%": [
                _load_run("tracekit 100%", 550e-6, 1800, expected=1800, unique=1800),
                _load_run("tracekit 100%", 960e-6, 900, expected=900, unique=897),
            ],
        }
    }
    text = render(results, [SERVERS["uvicorn"]], Settings(), 2, 60.0, "nox -s load")
    assert "- uvicorn `/plain`, tracekit 10%: +10 µs (limit 15 µs): met" in text
    assert "- uvicorn `/plain`, tracekit 100%: +55 µs (limit 60 µs): met" in text
    assert "- uvicorn, tracekit 100%: no span lost under load: not met (3 lost)" in text
    assert "| tracekit 10% | 1,425 | 0.95x |" in text


def test_the_load_block_survives_a_full_benchmark_rewrite(tmp_path: Path) -> None:
    from benchmarks.load._report import kept_blocks, write_block

    page = tmp_path / "performance.md"
    page.write_text("# Performance\n\nfigures\n", encoding="utf-8")
    write_block(page, "load", "## A service under load\n\nfirst\n")
    write_block(page, "load", "## A service under load\n\nsecond\n")
    write_block(page, "soak", "Soak: flat\n")
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# Performance\n\nfigures\n\n<!-- load: begin")
    assert "second" in text
    assert "first" not in text
    kept = kept_blocks(page)
    assert kept.count("begin (written by nox -s load)") == 2
    assert "second" in kept
    assert "Soak: flat" in kept
    assert "figures" not in kept
    assert kept_blocks(tmp_path / "absent.md") == ""
