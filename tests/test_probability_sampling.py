"""The consistent probability sampler behind ``traceidratio`` (tracekit._sampling.ProbabilitySampler).

Expected values come from the OpenTelemetry specification: trace/tracestate-probability-sampling.md
(the threshold table, the rejection threshold of 1%), trace/tracestate-handling.md (``th`` and
``rv``, the ``ot=rv:6e6d1a75832a2f`` example) and trace/sdk.md (ProbabilitySampler, ParentBased,
the Sampling Requirements on the random trace flag).

Spans are made three ways: by tracekit's own tracer (:class:`tracekit._tracer.Tracer`, which
integrations, ``tracekit.span()`` and ``@tracekit.traced`` use and which decides parent-based
sampling in line), by the SDK's tracer that ``tracing.provider.get_tracer()`` (and the global
``opentelemetry.trace.get_tracer()``) returns, and by ``tracekit.span()`` / ``@tracekit.traced``.
Every id a test builds comes from a seeded ``random.Random``; statistical tests use the real
tracer's own random ids with bands several standard deviations wide.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction

import pytest
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

import tracekit
from tracekit import _state
from tracekit._configure import Tracing
from tracekit._sampling import (
    ProbabilitySampler,
    parent_threshold_checked,
    probability_to_threshold,
    randomness,
)
from tracekit._tracer import Tracer
from tracekit.testing import capture_spans

MASK = (1 << 56) - 1
TWO_56 = 1 << 56
#: The rejection threshold of probability 0.25: ``th:c`` extended to 14 hex digits.
T_QUARTER = 0xC0000000000000
RANDOM_FLAG = 0x02
#: The SDK's own tracer, given tracekit's samplers, is checked where it handles the random
#: flag (1.40 and later: it neither sets nor keeps the flag before is_trace_id_random).
SDK_TRACER = ["sdk-tracer"] if hasattr(RandomIdGenerator, "is_trace_id_random") else []
ROOTS = 2_000
STATISTICAL = 20_000
CONGO = "congo=t61rcWkgMzE"  # another vendor's tracestate entry (the W3C specification's example)
HIGH = 0x4BF92F3577B34DA6A3  # 72 high bits of the trace ids the tests build by hand
PARENT_SPAN_ID = 0x00F067AA0BA902B7


@pytest.fixture
def rng() -> random.Random:
    return random.Random(20250117)


def _encode(threshold: int) -> str:
    """The specification's "Converting integer threshold to a T-value": trailing zeros removed."""
    return f"{threshold:014x}".rstrip("0") or "0"


def _configure(monkeypatch: pytest.MonkeyPatch, sampler: str, ratio: str) -> Tracing:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", ratio)
    tracing = tracekit.configure(exporters=[])
    assert tracing.provider is not None
    return tracing


def _tracekit_tracer(tracing: Tracing) -> Tracer:
    assert tracing.provider is not None
    tracer = Tracer(tracing.provider.get_tracer("probability-test"))
    assert tracer.fast
    return tracer


def _sdk_tracer(tracing: Tracing) -> trace.Tracer:
    assert tracing.provider is not None
    tracer = tracing.provider.get_tracer("probability-test")
    assert not isinstance(tracer, Tracer)
    return tracer


def _trace_id(rng: random.Random, low56: int) -> int:
    """A trace id whose 56 low bits (the randomness the specification reads) are ``low56``."""
    return (rng.getrandbits(72) << 56) | low56 or 1


def _header(state: TraceState | None) -> str:
    return state.to_header() if state is not None else ""


def _remote_context(trace_id: int, span_id: int, flags: int, tracestate: str | None) -> Context:
    """What the installed propagator extracts from ``traceparent`` (+ ``tracestate``) headers."""
    carrier = {"traceparent": f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"}
    if tracestate is not None:
        carrier["tracestate"] = tracestate
    ctx = propagate.extract(carrier)
    parent = trace.get_current_span(ctx).get_span_context()
    assert (parent.trace_id, parent.span_id, parent.is_remote) == (trace_id, span_id, True)
    assert parent.trace_flags == flags  # the random flag (0x02) is kept by tracekit's propagator
    assert _header(parent.trace_state) == (tracestate or "")
    return ctx


def _injected() -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


# =========================================================================== thresholds

#: The specification's table "1-in-N probability sampling": probability -> threshold at
#: precision 3, 4 and 5, and the actual probability at precision 4.
SPEC_TABLE = [
    (1, ("0", "0", "0"), 1.0),
    (0.5, ("8", "8", "8"), 0.5),
    (1 / 3, ("aab", "aaab", "aaaab"), 0.3333282470703125),
    (0.25, ("c", "c", "c"), 0.25),
    (0.2, ("ccd", "cccd", "ccccd"), 0.1999969482421875),
    (0.125, ("e", "e", "e"), 0.125),
    (0.1, ("e66", "e666", "e6666"), 0.100006103515625),
    (0.0625, ("f", "f", "f"), 0.0625),
    (0.01, ("fd71", "fd70a", "fd70a4"), 0.010000228881835938),
    (0.001, ("ffbe7", "ffbe77", "ffbe76d"), 0.0009999871253967285),
    (0.0001, ("fff972", "fff9724", "fff97247"), 0.00010000169277191162),
    (0.00001, ("ffff584", "ffff583a", "ffff583a5"), 1.00000761449337e-05),
    (0.000001, ("ffffef4", "ffffef39", "ffffef391"), 1.00000761449337e-06),
]


@pytest.mark.parametrize(("probability", "encoded", "actual"), SPEC_TABLE, ids=lambda v: str(v))
def test_threshold_table_of_the_specification(
    probability: float, encoded: tuple[str, str, str], actual: float
) -> None:
    sampler = ProbabilitySampler(probability)
    # The default precision is 4 digits, as the specification recommends.
    assert sampler.th == encoded[1]
    assert sampler.threshold == int(encoded[1].ljust(14, "0"), 16)
    assert sampler.root_trace_state == TraceState([("ot", f"th:{encoded[1]}")])
    for precision, expected in zip((3, 4, 5), encoded, strict=True):
        assert _encode(probability_to_threshold(probability, precision)) == expected, precision
    assert float(Fraction(TWO_56 - sampler.threshold, TWO_56)) == actual


@pytest.mark.parametrize(
    ("probability", "precision", "threshold"),
    [
        (1, 4, 0),
        (0.5, 4, 0x80000000000000),
        (0.25, 4, 0xC0000000000000),
        (0.1, 4, 0xE6660000000000),
        # "(1-0.01) * 2^56 ~= 71337018784743424 = 0xfd70a400000000" (Rejection Threshold)
        (0.01, 5, 0xFD70A400000000),
        (0.01, 4, 0xFD70A000000000),
        # the smallest probability the specification defines keeps exactly one value of R
        (2**-56, 4, TWO_56 - 1),
    ],
)
def test_threshold_integers(probability: float, precision: int, threshold: int) -> None:
    assert probability_to_threshold(probability, precision) == threshold


def test_one_percent_at_precision_five_encodes_as_the_specification_shows() -> None:
    assert probability_to_threshold(0.01, 5) == 71337018784743424
    # "A span sampled at 1% in this case will have an OpenTelemetry TraceState value ot=th:fd70a4"
    assert _encode(probability_to_threshold(0.01, 5)) == "fd70a4"


# =========================================================================== R >= T

RV_EXAMPLE = 0x6E6D1A75832A2F  # tracestate-handling.md: ot=rv:6e6d1a75832a2f


def _decide(sampler: ProbabilitySampler, trace_id: int, tracestate: str | None, flags: int = 0x03) -> bool:
    """``sampler.should_sample`` for a child of a remote parent carrying ``tracestate``."""
    parent = SpanContext(
        trace_id,
        PARENT_SPAN_ID,
        is_remote=True,
        trace_flags=TraceFlags(flags),
        trace_state=TraceState.from_header([tracestate]) if tracestate else None,
    )
    ctx = trace.set_span_in_context(NonRecordingSpan(parent))
    result = sampler.should_sample(ctx, trace_id, "child")
    assert result.decision in (Decision.RECORD_AND_SAMPLE, Decision.DROP)
    return result.decision is Decision.RECORD_AND_SAMPLE


def test_randomness_is_the_trace_ids_low_56_bits_or_a_valid_rv() -> None:
    trace_id = HIGH << 56 | RV_EXAMPLE
    # "the same as for a hexadecimal TraceID ending in 6e6d1a75832a2f"
    assert randomness(trace_id, None) == RV_EXAMPLE
    assert randomness(trace_id, TraceState()) == RV_EXAMPLE
    assert randomness(trace_id, TraceState([("ot", "th:c")])) == RV_EXAMPLE
    # rv wins over the trace id
    all_ones = HIGH << 56 | MASK
    assert randomness(all_ones, TraceState([("ot", "rv:6e6d1a75832a2f")])) == RV_EXAMPLE
    assert randomness(all_ones, TraceState([("ot", "th:c;rv:00000000000001")])) == 1
    assert randomness(0x1, TraceState([(CONGO.split("=")[0], "x"), ("ot", "rv:ffffffffffffff")])) == MASK


@pytest.mark.parametrize(
    "rv",
    [
        "6E6D1A75832A2F",  # uppercase
        "6e6d1a75832a2",  # 13 digits
        "6e6d1a75832a2f0",  # 15 digits
        "6e6d1a75832a2g",  # not hexadecimal
        "-6e6d1a75832a2",  # not hexadecimal
        "",  # empty
    ],
)
def test_invalid_rv_is_ignored(rv: str) -> None:
    trace_id = HIGH << 56 | MASK
    assert randomness(trace_id, TraceState([("ot", f"th:c;rv:{rv}")])) == MASK
    assert randomness(HIGH << 56 | 5, TraceState([("ot", f"rv:{rv};th:c")])) == 5
    # and the decision falls back to the trace id too: R = 2**56-1 passes every threshold
    assert _decide(ProbabilitySampler(0.0001), trace_id, f"ot=rv:{rv}") is True
    assert _decide(ProbabilitySampler(0.0001), HIGH << 56, f"ot=rv:{rv}") is False


def test_r_equal_to_t_is_sampled_and_one_less_is_not() -> None:
    sampler = ProbabilitySampler(0.25)
    base = HIGH << 56
    assert _decide(sampler, base | T_QUARTER, None) is True
    assert _decide(sampler, base | (T_QUARTER - 1), None) is False
    assert _decide(sampler, base, "ot=rv:c0000000000000") is True
    assert _decide(sampler, base | MASK, "ot=rv:bfffffffffffff") is False


@pytest.mark.parametrize(
    ("probability", "sampled"),
    [
        (1.0, True),
        (0.9, True),
        (0.6, True),
        (0.57, True),
        (0.569, True),  # threshold 0x6e56... <= 0x6e6d1a75832a2f
        (0.568, False),  # threshold 0x6e98... >  0x6e6d1a75832a2f
        (0.5, False),
        (0.25, False),
        (0.1, False),
    ],
)
def test_rv_example_is_sampled_from_56_9_percent_up(probability: float, sampled: bool) -> None:
    # "a consistent positive sampling decision at probabilities ranging from 56.9% through
    # 100% (i.e., rejection threshold values 0x6e6d1a75832a2f through 0)"
    sampler = ProbabilitySampler(probability)
    assert (sampler.threshold <= RV_EXAMPLE) is sampled
    # the trace id would decide the other way in every case: rv alone decides
    trace_id = HIGH << 56 | (0 if sampled else MASK)
    assert _decide(sampler, trace_id, "ot=rv:6e6d1a75832a2f") is sampled
    assert _decide(sampler, (trace_id & ~MASK) | RV_EXAMPLE, None) is sampled  # same R, from the id


# =========================================================================== the sampler alone


def test_description() -> None:
    assert ProbabilitySampler(0.25).get_description() == "ProbabilitySampler{0.25}"
    assert ProbabilitySampler(1.0).get_description() == "ProbabilitySampler{1.0}"
    # "high enough to identify when Samplers have different ratios" (sdk.md, GetDescription)
    assert ProbabilitySampler(1e-7).get_description() != ProbabilitySampler(2e-7).get_description()
    assert ProbabilitySampler(1e-7).get_description() != ProbabilitySampler(0).get_description()


def test_ratio_zero_samples_nothing(rng: random.Random) -> None:
    sampler = ProbabilitySampler(0)
    assert sampler.th is None
    assert sampler.root_trace_state is None
    for low in (MASK, T_QUARTER, 0):
        result = sampler.should_sample(None, _trace_id(rng, low), "root")
        assert result.decision is Decision.DROP
        assert not result.trace_state
    for _ in range(1_000):
        assert sampler.should_sample(None, rng.getrandbits(128) or 1, "root").decision is Decision.DROP


def test_ratio_one_samples_everything_with_th_0(rng: random.Random) -> None:
    sampler = ProbabilitySampler(1)
    assert sampler.th == "0"
    assert sampler.threshold == 0
    for low in (0, 1, MASK):
        result = sampler.should_sample(None, _trace_id(rng, low), "root")
        assert result.decision is Decision.RECORD_AND_SAMPLE
        assert _header(result.trace_state) == "ot=th:0"
    for _ in range(1_000):
        result = sampler.should_sample(None, rng.getrandbits(128) or 1, "root")
        assert result.decision is Decision.RECORD_AND_SAMPLE
        assert _header(result.trace_state) == "ot=th:0"


@pytest.mark.parametrize("ratio", [-0.1, -1e-300, 1.0000001, 2.0, math.inf, -math.inf, math.nan])
def test_ratio_outside_zero_one_is_rejected(ratio: float) -> None:
    with pytest.raises(ValueError, match="range"):
        ProbabilitySampler(ratio)


def test_root_decision_and_tracestate(rng: random.Random) -> None:
    sampler = ProbabilitySampler(0.25)
    outcomes = set()
    for _ in range(ROOTS):
        trace_id = rng.getrandbits(128) or 1
        result = sampler.should_sample(None, trace_id, "root")
        sampled = result.decision is Decision.RECORD_AND_SAMPLE
        outcomes.add(sampled)
        assert sampled is ((trace_id & MASK) >= T_QUARTER)
        assert _header(result.trace_state) == ("ot=th:c" if sampled else "")
    assert outcomes == {True, False}


# =========================================================================== consistency

LADDER = [0.0001, 0.001, 0.01, 0.1, 0.2, 0.25, 1 / 3, 0.5, 0.569, 0.9, 0.9999, 1.0]


def test_consistency_every_trace_kept_at_a_ratio_is_kept_at_any_higher_one(rng: random.Random) -> None:
    samplers = [ProbabilitySampler(ratio) for ratio in LADDER]
    ids = [rng.getrandbits(128) or 1 for _ in range(STATISTICAL)]
    kept = [
        {tid for tid in ids if s.should_sample(None, tid, "root").decision is Decision.RECORD_AND_SAMPLE}
        for s in samplers
    ]
    tenth, quarter = kept[LADDER.index(0.1)], kept[LADDER.index(0.25)]
    assert tenth <= quarter
    assert 0.09 * STATISTICAL <= len(tenth) <= 0.11 * STATISTICAL
    assert 0.235 * STATISTICAL <= len(quarter) <= 0.265 * STATISTICAL
    for lower, higher in itertools.pairwise(kept):
        assert lower <= higher
    assert len(kept[-1]) == STATISTICAL


def test_consistency_across_two_configurations(monkeypatch: pytest.MonkeyPatch, rng: random.Random) -> None:
    # traceidratio (not parent-based) decides a child of a remote parent by the trace id
    # alone: the same 20,000 trace ids under two configurations, 10% then 25%.
    ids = [(rng.getrandbits(128) or 1, rng.getrandbits(64) or 1) for _ in range(STATISTICAL)]
    kept = []
    for ratio in ("0.1", "0.25"):
        tracer = _tracekit_tracer(_configure(monkeypatch, "traceidratio", ratio))
        sampled = set()
        for trace_id, span_id in ids:
            span = tracer.start_span("child", context=_remote_context(trace_id, span_id, RANDOM_FLAG, None))
            span_context = span.get_span_context()
            assert span_context.trace_id == trace_id
            if span_context.trace_flags.sampled:
                sampled.add(trace_id)
        tracekit.shutdown(timeout=5)
        kept.append(sampled)
    tenth, quarter = kept
    assert 0.09 * STATISTICAL <= len(tenth) <= 0.11 * STATISTICAL
    assert 0.235 * STATISTICAL <= len(quarter) <= 0.265 * STATISTICAL
    assert tenth <= quarter
    # and exactly the traces the sampler objects keep
    assert tenth == {tid for tid, _ in ids if tid & MASK >= ProbabilitySampler(0.1).threshold}


# =========================================================================== root spans, configured


@contextmanager
def _no_current_span() -> Iterator[None]:
    token = otel_context.attach(Context())
    try:
        yield
    finally:
        otel_context.detach(token)


#: (root span context, headers injected while the root is current, child span context)
RootOutcome = tuple[SpanContext, dict[str, str], SpanContext]


def _roots_through_tracer(tracer: trace.Tracer) -> Callable[[], RootOutcome]:
    def make() -> RootOutcome:
        with tracer.start_as_current_span("root") as root:
            carrier = _injected()
            with tracer.start_as_current_span("child") as child:
                pass
        return root.get_span_context(), carrier, child.get_span_context()

    return make


def _roots_through_span_block() -> RootOutcome:
    with tracekit.span("root") as root:
        carrier = _injected()
        with tracekit.span("child") as child:
            pass
    return root.get_span_context(), carrier, child.get_span_context()


@tracekit.traced
def _traced_child() -> SpanContext:
    return trace.get_current_span().get_span_context()


@tracekit.traced
def _traced_root() -> RootOutcome:
    return trace.get_current_span().get_span_context(), _injected(), _traced_child()


ROOT_MAKERS = ["tracekit-tracer", *SDK_TRACER, "tracekit.span", "tracekit.traced"]


def _root_maker(name: str, tracing: Tracing) -> Callable[[], RootOutcome]:
    assert isinstance(_state.tracer, Tracer)
    assert _state.tracer.fast
    if name == "tracekit-tracer":
        tracer = _tracekit_tracer(tracing)
        assert tracer._decide is not None  # parent-based: decided in line
        return _roots_through_tracer(tracer)
    if name == "sdk-tracer":
        return _roots_through_tracer(_sdk_tracer(tracing))
    if name == "tracekit.span":
        return _roots_through_span_block
    return _traced_root


@pytest.mark.parametrize("maker", ROOT_MAKERS)
def test_root_spans_carry_th_and_the_random_flag(monkeypatch: pytest.MonkeyPatch, maker: str) -> None:
    make = _root_maker(maker, _configure(monkeypatch, "parentbased_traceidratio", "0.25"))
    kept = 0
    with _no_current_span():
        for _ in range(ROOTS):
            root, carrier, child = make()
            trace_id, span_id = root.trace_id, root.span_id
            sampled = root.trace_flags.sampled
            assert sampled is ((trace_id & MASK) >= T_QUARTER)
            assert child.trace_id == trace_id
            assert child.trace_flags.sampled is sampled
            if sampled:
                kept += 1
                assert root.trace_flags == 0x03
                assert list(root.trace_state.items()) == [("ot", "th:c")]
                assert carrier == {
                    "traceparent": f"00-{trace_id:032x}-{span_id:016x}-03",
                    "tracestate": "ot=th:c",
                }
                assert child.trace_flags == 0x03
                assert list(child.trace_state.items()) == [("ot", "th:c")]
            else:
                assert root.trace_flags == RANDOM_FLAG
                assert "ot" not in root.trace_state
                assert carrier == {"traceparent": f"00-{trace_id:032x}-{span_id:016x}-02"}
                assert child.trace_flags == RANDOM_FLAG
                assert "ot" not in child.trace_state
    assert 0.2 * ROOTS <= kept <= 0.3 * ROOTS


def test_exported_spans_carry_th(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    sampled = set()
    with capture_spans() as recorder, _no_current_span():
        for _ in range(400):
            with tracekit.span("root") as root, tracekit.span("child"):
                if root.get_span_context().trace_flags.sampled:
                    sampled.add(root.get_span_context().trace_id)
        exported = recorder.spans
    assert 60 <= len(sampled) <= 140
    assert {span.context.trace_id for span in exported} == sampled
    assert len(exported) == 2 * len(sampled)
    for span in exported:
        assert span.context.trace_flags == 0x03
        assert _header(span.context.trace_state) == "ot=th:c"


class _ChosenTraceIds(IdGenerator):
    """Trace ids from a list (flagged random, as W3C Trace Context Level 2 ids are)."""

    def __init__(self, trace_ids: list[int], rng: random.Random) -> None:
        self._trace_ids = iter(trace_ids)
        self._rng = rng

    def generate_trace_id(self) -> int:
        return next(self._trace_ids)

    def generate_span_id(self) -> int:
        return self._rng.getrandbits(64) or 1

    def is_trace_id_random(self) -> bool:
        return True


@pytest.mark.parametrize("maker", ["tracekit-tracer", *SDK_TRACER])
def test_root_decision_at_the_threshold(
    monkeypatch: pytest.MonkeyPatch, rng: random.Random, maker: str
) -> None:
    # R == T is sampled, R == T - 1 is not: on the configured provider's tracer, given chosen ids
    lows = [T_QUARTER, T_QUARTER - 1, T_QUARTER + 1, 0, MASK, *(rng.getrandbits(56) for _ in range(200))]
    trace_ids = [HIGH << 56 | low for low in lows]
    tracing = _configure(monkeypatch, "parentbased_traceidratio", "0.25")
    sdk = _sdk_tracer(tracing)
    sdk.id_generator = _ChosenTraceIds(trace_ids, rng)  # type: ignore[attr-defined]
    tracer = Tracer(sdk) if maker == "tracekit-tracer" else sdk
    assert not isinstance(tracer, Tracer) or (tracer.fast and tracer._decide is not None)
    with _no_current_span():
        for trace_id in trace_ids:
            span = tracer.start_span("root")
            ctx = span.get_span_context()
            sampled = (trace_id & MASK) >= T_QUARTER
            assert ctx.trace_id == trace_id
            assert span.is_recording() is sampled
            assert ctx.trace_flags == (0x03 if sampled else RANDOM_FLAG)
            assert _header(ctx.trace_state) == ("ot=th:c" if sampled else "")
            span.end()


@pytest.mark.parametrize("maker", ["tracekit-tracer", *SDK_TRACER])
def test_ten_percent_of_roots_are_kept(monkeypatch: pytest.MonkeyPatch, maker: str) -> None:
    tracing = _configure(monkeypatch, "parentbased_traceidratio", "0.1")
    tracer = _tracekit_tracer(tracing) if maker == "tracekit-tracer" else _sdk_tracer(tracing)
    kept = 0
    with _no_current_span():
        for _ in range(STATISTICAL):
            span = tracer.start_span("root")
            ctx = span.get_span_context()
            assert ctx.trace_flags & RANDOM_FLAG
            kept += ctx.trace_flags.sampled
            span.end()
    # 10.0006% (th:e666) +/- 1 point: the binomial standard deviation is 0.21 point
    assert 0.09 * STATISTICAL <= kept <= 0.11 * STATISTICAL, kept / STATISTICAL


# =========================================================================== remote parents, parent-based

#: (parent flags, trace id's 56 low bits, parent tracestate, child's expected tracestate)
PARENT_BASED_CASES = {
    # consistent: R >= T, th kept
    "sampled-consistent": (0x01, T_QUARTER, "ot=th:c", "ot=th:c"),
    "sampled-consistent-random-flag": (0x03, 0xD00000000000AB, f"ot=th:c,{CONGO}", f"ot=th:c,{CONGO}"),
    "sampled-consistent-by-rv": (
        0x03,
        0x00000000000001,
        f"ot=th:c;rv:c0000000000000,{CONGO}",
        f"ot=th:c;rv:c0000000000000,{CONGO}",
    ),
    "sampled-no-th": (
        0x03,
        0x00000000000001,
        f"ot=rv:00000000000001,{CONGO}",
        f"ot=rv:00000000000001,{CONGO}",
    ),
    # apparently inconsistent: R < T, th erased, the rest kept
    "sampled-inconsistent-rv": (
        0x03,
        MASK,  # the trace id would pass: rv is the randomness
        f"ot=th:c;rv:bfffffffffffff,{CONGO}",
        f"ot=rv:bfffffffffffff,{CONGO}",
    ),
    "sampled-inconsistent-other-subkey": (0x01, T_QUARTER - 1, f"{CONGO},ot=p:8;th:c", f"ot=p:8,{CONGO}"),
    "sampled-inconsistent-other-vendor": (0x01, 0x12345678, f"{CONGO},ot=th:c", CONGO),
    "sampled-inconsistent-th-alone": (0x03, 0x12345678, "ot=th:c", ""),
    # unsampled parent: any th erased
    "unsampled-with-rv": (0x02, MASK, f"ot=th:c;rv:ffffffffffffff,{CONGO}", f"ot=rv:ffffffffffffff,{CONGO}"),
    "unsampled-other-vendor": (0x00, MASK, f"ot=th:c,{CONGO}", CONGO),
    "unsampled-th-alone": (0x02, MASK, "ot=th:c", ""),
}


def _child_under(maker: str, tracing: Tracing, ctx: Context) -> tuple[SpanContext, dict[str, str]]:
    """The child's span context and the headers injected while it is current."""
    if maker == "tracekit.span":
        token = otel_context.attach(ctx)
        try:
            with tracekit.span("child") as span:
                return span.get_span_context(), _injected()
        finally:
            otel_context.detach(token)
    tracer = _tracekit_tracer(tracing) if maker == "tracekit-tracer" else _sdk_tracer(tracing)
    with tracer.start_as_current_span("child", context=ctx) as span:
        return span.get_span_context(), _injected()


@pytest.mark.parametrize("maker", ["tracekit-tracer", *SDK_TRACER, "tracekit.span"])
@pytest.mark.parametrize("case", list(PARENT_BASED_CASES))
def test_parent_based_child_of_remote_parent(
    monkeypatch: pytest.MonkeyPatch, rng: random.Random, case: str, maker: str
) -> None:
    flags, low, tracestate, expected = PARENT_BASED_CASES[case]
    tracing = _configure(monkeypatch, "parentbased_traceidratio", "0.25")
    trace_id = HIGH << 56 | low
    ctx = _remote_context(trace_id, PARENT_SPAN_ID, flags, tracestate)
    child, carrier = _child_under(maker, tracing, ctx)
    assert child.trace_id == trace_id
    # parent-based: the parent's sampled flag decides; the random flag is passed on
    assert child.trace_flags == flags
    assert _header(child.trace_state) == expected
    assert carrier["traceparent"].startswith(f"00-{trace_id:032x}-")
    assert carrier["traceparent"].endswith(f"-{flags:02x}")
    assert carrier.get("tracestate", "") == expected


@pytest.mark.parametrize(
    ("tracestate", "trace_id", "sampled", "expected"),
    [
        ("ot=th:c", T_QUARTER, True, "ot=th:c"),
        ("ot=th:c", T_QUARTER - 1, True, ""),
        ("ot=th:c", MASK, False, ""),
        (f"ot=th:c,{CONGO}", T_QUARTER - 1, True, CONGO),
        (f"ot=th:c;rv:c0000000000000,{CONGO}", 0, True, f"ot=th:c;rv:c0000000000000,{CONGO}"),
        (f"ot=th:c;rv:bfffffffffffff,{CONGO}", MASK, True, f"ot=rv:bfffffffffffff,{CONGO}"),
        (f"ot=rv:bfffffffffffff,{CONGO}", 0, False, f"ot=rv:bfffffffffffff,{CONGO}"),
        ("ot=th:0", 0, True, "ot=th:0"),
        ("ot=th:0", 0, False, ""),
    ],
)
def test_parent_threshold_checked(tracestate: str, trace_id: int, sampled: bool, expected: str) -> None:
    state = TraceState.from_header([tracestate])
    assert _header(parent_threshold_checked(state, HIGH << 56 | trace_id, sampled)) == expected


# =========================================================================== traceidratio alone

#: (parent flags, trace id's 56 low bits, parent tracestate, child sampled, child tracestate)
RATIO_CASES = {
    "rv-passes-trace-id-fails": (
        0x00,  # the parent's sampled flag is ignored
        0x00000000000001,
        f"ot=th:8;rv:c0000000000000,{CONGO}",
        True,
        f"ot=th:c;rv:c0000000000000,{CONGO}",
    ),
    "rv-passes-sampled-parent": (
        0x01,
        0x00000000000001,
        "ot=rv:c0000000000000",
        True,
        "ot=th:c;rv:c0000000000000",
    ),
    "rv-fails-trace-id-passes": (
        0x03,
        MASK,
        f"ot=th:8;rv:bfffffffffffff,{CONGO}",
        False,
        f"ot=rv:bfffffffffffff,{CONGO}",
    ),
    "trace-id-passes": (0x02, T_QUARTER, CONGO, True, f"ot=th:c,{CONGO}"),
    "trace-id-passes-no-tracestate": (0x03, MASK, None, True, "ot=th:c"),
    "trace-id-fails-th-erased": (0x03, T_QUARTER - 1, f"ot=th:0,{CONGO}", False, CONGO),
    "trace-id-fails-th-alone-erased": (0x03, 0, "ot=th:0", False, ""),
}


@pytest.mark.parametrize("maker", ["tracekit-tracer", *SDK_TRACER])
@pytest.mark.parametrize("case", list(RATIO_CASES))
def test_traceidratio_child_of_remote_parent(monkeypatch: pytest.MonkeyPatch, case: str, maker: str) -> None:
    flags, low, tracestate, sampled, expected = RATIO_CASES[case]
    tracing = _configure(monkeypatch, "traceidratio", "0.25")
    if maker == "tracekit-tracer":
        tracer: trace.Tracer = _tracekit_tracer(tracing)
        assert tracer._decide is None  # ProbabilitySampler.should_sample is called
    else:
        tracer = _sdk_tracer(tracing)
    trace_id = HIGH << 56 | low
    span = tracer.start_span("child", context=_remote_context(trace_id, PARENT_SPAN_ID, flags, tracestate))
    child = span.get_span_context()
    assert span.is_recording() is sampled
    span.end()
    assert child.trace_id == trace_id
    assert child.trace_flags == (0x01 if sampled else 0) | (flags & RANDOM_FLAG)
    assert _header(child.trace_state) == expected


def _randomness_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "tracekit"
        and record.levelno == logging.WARNING
        and "W3C Trace Context Level 2" in record.getMessage()
        and "random" in record.getMessage()
    ]


@pytest.mark.parametrize("maker", ["tracekit-tracer", *SDK_TRACER])
def test_presumed_randomness_is_warned_about_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, rng: random.Random, maker: str
) -> None:
    tracing = _configure(monkeypatch, "traceidratio", "0.25")
    tracer = _tracekit_tracer(tracing) if maker == "tracekit-tracer" else _sdk_tracer(tracing)
    caplog.set_level(logging.WARNING, logger="tracekit")
    for flags, tracestate in ((0x01, None), (0x00, CONGO)):  # no random flag, no rv
        ctx = _remote_context(_trace_id(rng, rng.getrandbits(56)), PARENT_SPAN_ID, flags, tracestate)
        tracer.start_span("child", context=ctx).end()
    assert len(_randomness_warnings(caplog)) == 1


@pytest.mark.parametrize("maker", ["tracekit-tracer", *SDK_TRACER])
def test_no_randomness_warning_when_randomness_is_known(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, rng: random.Random, maker: str
) -> None:
    tracing = _configure(monkeypatch, "traceidratio", "0.25")
    tracer = _tracekit_tracer(tracing) if maker == "tracekit-tracer" else _sdk_tracer(tracing)
    caplog.set_level(logging.WARNING, logger="tracekit")
    with _no_current_span():
        for _ in range(50):  # roots, and their local children (the root's id is flagged random)
            with tracer.start_as_current_span("root"):
                tracer.start_span("child").end()
    for flags, tracestate in (
        (0x02, None),
        (0x03, None),
        (0x01, "ot=rv:0123456789abcd"),
        (0x00, "ot=rv:ffffffffffffff"),
    ):
        ctx = _remote_context(_trace_id(rng, rng.getrandbits(56)), PARENT_SPAN_ID, flags, tracestate)
        tracer.start_span("child", context=ctx).end()
    assert _randomness_warnings(caplog) == []
