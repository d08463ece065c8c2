"""Sampling with the real SDK sampler tracekit builds from OTEL_TRACES_SAMPLER / _ARG.

Decisions are read from the span context's sampled flag, so nothing needs exporting except
in the one test that checks that only sampled spans are exported.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

import tracekit
from tracekit.testing import capture_spans

ROOTS = 20_000
PARENTS = 2_000


@pytest.fixture
def rng() -> random.Random:
    return random.Random(20240611)


def _ids(rng: random.Random) -> tuple[int, int]:
    return rng.getrandbits(128) or 1, rng.getrandbits(64) or 1


def _tracer(monkeypatch: pytest.MonkeyPatch, **env: str) -> trace.Tracer:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    tracing = tracekit.configure(exporters=[])
    assert tracing.provider is not None
    return tracing.provider.get_tracer("sampling-test")


def _root_decisions(tracer: trace.Tracer, count: int) -> Iterator[tuple[int, bool]]:
    """(trace id, sampled) of ``count`` new root spans."""
    for _ in range(count):
        span = tracer.start_span("root")
        ctx = span.get_span_context()
        assert ctx.is_valid
        assert span.is_recording() is ctx.trace_flags.sampled
        span.end()
        yield ctx.trace_id, ctx.trace_flags.sampled


def _remote_parent(trace_id: int, span_id: int, sampled: bool) -> otel_context.Context:
    """A context extracted by the installed propagator from a traceparent header."""
    from opentelemetry import propagate

    flags = "01" if sampled else "00"
    carrier = {"traceparent": f"00-{trace_id:032x}-{span_id:016x}-{flags}"}
    ctx = propagate.extract(carrier)
    parent = trace.get_current_span(ctx).get_span_context()
    assert (parent.trace_id, parent.span_id, parent.is_remote) == (trace_id, span_id, True)
    assert parent.trace_flags.sampled is sampled
    return ctx


def _local_parent(trace_id: int, span_id: int, sampled: bool) -> otel_context.Context:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    parent = SpanContext(trace_id, span_id, is_remote=False, trace_flags=flags)
    return trace.set_span_in_context(NonRecordingSpan(parent))


def _child_sampled(tracer: trace.Tracer, ctx: otel_context.Context, trace_id: int, parent_id: int) -> bool:
    span = tracer.start_span("child", context=ctx)
    child = span.get_span_context()
    assert child.trace_id == trace_id
    assert child.span_id != parent_id
    assert span.is_recording() is child.trace_flags.sampled
    if span.is_recording():
        assert span.parent is not None  # type: ignore[attr-defined]
        assert span.parent.span_id == parent_id  # type: ignore[attr-defined]
    span.end()
    return child.trace_flags.sampled


# --------------------------------------------------------------------------- ratio


def test_sampler_arg_alone_keeps_ten_percent_of_new_traces(monkeypatch: pytest.MonkeyPatch) -> None:
    tracer = _tracer(monkeypatch, OTEL_TRACES_SAMPLER_ARG="0.1")
    kept = sum(sampled for _, sampled in _root_decisions(tracer, ROOTS))
    # 10% +/- 1 point; the binomial standard deviation is 0.21 point, so this is a 4.7-sigma band
    assert 0.09 * ROOTS <= kept <= 0.11 * ROOTS, kept / ROOTS


def test_ratio_decision_is_a_function_of_the_trace_id(monkeypatch: pytest.MonkeyPatch) -> None:
    # traceidratio ignores the parent, so a child made under a remote parent with the same
    # trace id, with the opposite flag, gets the same decision as the root had.
    tracer = _tracer(monkeypatch, OTEL_TRACES_SAMPLER="traceidratio", OTEL_TRACES_SAMPLER_ARG="0.5")
    rng = random.Random(7)
    decisions = list(_root_decisions(tracer, PARENTS))
    assert 0.4 * PARENTS <= sum(s for _, s in decisions) <= 0.6 * PARENTS
    for trace_id, sampled in decisions:
        parent_id = rng.getrandbits(64) or 1
        ctx = _remote_parent(trace_id, parent_id, sampled=not sampled)
        assert _child_sampled(tracer, ctx, trace_id, parent_id) is sampled


def test_only_sampled_spans_are_exported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.1")
    with capture_spans() as recorder:
        assert recorder.tracing.provider is not None
        tracer = recorder.tracing.provider.get_tracer("sampling-test")
        sampled = {trace_id for trace_id, s in _root_decisions(tracer, 1_000) if s}
        exported = {span.context.trace_id for span in recorder.spans}
    assert 50 <= len(sampled) <= 150
    assert exported == sampled


# --------------------------------------------------------------------------- parent-based (the default)


@pytest.mark.parametrize("ratio", ["0", "0.1", "1"])
@pytest.mark.parametrize("remote", [True, False], ids=["remote", "local"])
def test_incoming_sampled_parent_is_always_followed(
    monkeypatch: pytest.MonkeyPatch, rng: random.Random, ratio: str, remote: bool
) -> None:
    tracer = _tracer(monkeypatch, OTEL_TRACES_SAMPLER_ARG=ratio)
    make_parent = _remote_parent if remote else _local_parent
    for _ in range(PARENTS):
        trace_id, parent_id = _ids(rng)
        ctx = make_parent(trace_id, parent_id, True)
        assert _child_sampled(tracer, ctx, trace_id, parent_id) is True


@pytest.mark.parametrize("ratio", ["0", "0.1", "1"])
@pytest.mark.parametrize("remote", [True, False], ids=["remote", "local"])
def test_incoming_unsampled_parent_is_never_sampled(
    monkeypatch: pytest.MonkeyPatch, rng: random.Random, ratio: str, remote: bool
) -> None:
    tracer = _tracer(monkeypatch, OTEL_TRACES_SAMPLER_ARG=ratio)
    make_parent = _remote_parent if remote else _local_parent
    for _ in range(PARENTS):
        trace_id, parent_id = _ids(rng)
        ctx = make_parent(trace_id, parent_id, False)
        assert _child_sampled(tracer, ctx, trace_id, parent_id) is False


def test_local_parent_made_by_tracekit_passes_its_decision_down(monkeypatch: pytest.MonkeyPatch) -> None:
    # A real span tree: roots decided by the ratio, every descendant follows its root.
    tracer = _tracer(monkeypatch, OTEL_TRACES_SAMPLER_ARG="0.5")
    outcomes = set()
    for _ in range(400):
        with tracer.start_as_current_span("root") as root:
            decision = root.get_span_context().trace_flags.sampled
            outcomes.add(decision)
            with (
                tracer.start_as_current_span("child") as child,
                tracer.start_as_current_span("grandchild") as grandchild,
            ):
                assert child.get_span_context().trace_flags.sampled is decision
                assert grandchild.get_span_context().trace_flags.sampled is decision
                assert grandchild.get_span_context().trace_id == root.get_span_context().trace_id
    assert outcomes == {True, False}


# --------------------------------------------------------------------------- each sampler name


def _root_rate(tracer: trace.Tracer, count: int) -> float:
    return sum(sampled for _, sampled in _root_decisions(tracer, count)) / count


def _child_rate(tracer: trace.Tracer, rng: random.Random, parent_sampled: bool, remote: bool) -> float:
    make_parent = _remote_parent if remote else _local_parent
    kept = 0
    for _ in range(PARENTS):
        trace_id, parent_id = _ids(rng)
        kept += _child_sampled(tracer, make_parent(trace_id, parent_id, parent_sampled), trace_id, parent_id)
    return kept / PARENTS


#: sampler -> (root rate, child rate under a sampled parent, under an unsampled parent),
#: with OTEL_TRACES_SAMPLER_ARG=0.25; None means "about 25%".
SAMPLER_BEHAVIOUR = {
    "always_on": (1.0, 1.0, 1.0),
    "always_off": (0.0, 0.0, 0.0),
    "traceidratio": (None, None, None),
    "parentbased_always_on": (1.0, 1.0, 0.0),
    "parentbased_always_off": (0.0, 1.0, 0.0),
    "parentbased_traceidratio": (None, 1.0, 0.0),
}


@pytest.mark.parametrize("sampler", list(SAMPLER_BEHAVIOUR))
@pytest.mark.parametrize("remote", [True, False], ids=["remote", "local"])
def test_each_sampler_name_behaves_as_specified(
    monkeypatch: pytest.MonkeyPatch, rng: random.Random, sampler: str, remote: bool
) -> None:
    tracer = _tracer(monkeypatch, OTEL_TRACES_SAMPLER=sampler, OTEL_TRACES_SAMPLER_ARG="0.25")
    expected = SAMPLER_BEHAVIOUR[sampler]
    observed = (
        _root_rate(tracer, PARENTS * 2),
        _child_rate(tracer, rng, parent_sampled=True, remote=remote),
        _child_rate(tracer, rng, parent_sampled=False, remote=remote),
    )
    for want, got in zip(expected, observed, strict=True):
        if want is None:
            # 25% of 2,000-4,000 draws: standard deviation under 1 point
            assert 0.2 <= got <= 0.3, observed
        else:
            assert got == want, observed
