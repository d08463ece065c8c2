"""Sampler names (OTEL_TRACES_SAMPLER) to OpenTelemetry SDK samplers."""

from __future__ import annotations

from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)

__all__ = ["drops_children_of_unsampled_parents", "make_sampler"]


def make_sampler(name: str, ratio: float) -> Sampler:
    """Build the sampler called ``name`` by the specification; ``ratio`` feeds *traceidratio*.

    ``name`` has already been validated by the settings layer.
    """
    root: Sampler
    base = name.removeprefix("parentbased_")
    if base == "always_on":
        root = ALWAYS_ON
    elif base == "always_off":
        root = ALWAYS_OFF
    else:
        root = TraceIdRatioBased(ratio)
    return ParentBased(root) if name.startswith("parentbased_") else root


def drops_children_of_unsampled_parents(tracer: object) -> tuple[bool, bool]:
    """Whether ``tracer`` drops, without any trace, every child of an unsampled parent:
    ``(local parent, remote parent)``.

    True for tracekit's tracer making spans itself, or an SDK tracer whose own span metrics
    are off (they would count the dropped span), when the sampler is parent-based with a
    local-parent-not-sampled sampler that always drops (the default); for a remote parent,
    when the remote-parent-not-sampled sampler always drops too (the default): a call that
    skips the span leaves the remote parent current, so spans deeper down must be decided
    alike under either parent. Anything unexpected answers ``False``, the safe answer: the
    span is then made, and sampled, in the ordinary way.
    """
    from opentelemetry.sdk.trace import Tracer as SdkTracer
    from opentelemetry.sdk.trace.sampling import Decision, StaticSampler

    from tracekit._tracer import Tracer

    if type(tracer) is Tracer:
        if not tracer.fast:
            return drops_children_of_unsampled_parents(tracer._delegate)
        sampler = tracer._sampler
    elif type(tracer) is SdkTracer:
        metrics = getattr(tracer, "_tracer_metrics", None)
        if metrics is not None and type(metrics).__name__ != "NoOpTracerMetrics":
            return False, False
        sampler = tracer.sampler
    else:
        return False, False
    if not isinstance(sampler, ParentBased):
        return False, False

    def drops(name: str) -> bool:
        delegate = getattr(sampler, name, None)
        return isinstance(delegate, StaticSampler) and getattr(delegate, "_decision", None) is Decision.DROP

    local = drops("_local_parent_not_sampled")
    return local, local and drops("_remote_parent_not_sampled")
