"""Sampler names (OTEL_TRACES_SAMPLER) to OpenTelemetry SDK samplers."""

from __future__ import annotations

from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)

__all__ = ["drops_children_of_unsampled_local_parents", "make_sampler"]


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


def drops_children_of_unsampled_local_parents(tracer: object) -> bool:
    """Whether ``tracer`` drops, without any trace, every child of an unsampled local parent.

    True for tracekit's tracer making spans itself, or an SDK tracer whose own span metrics
    are off (they would count the dropped span), when the sampler is parent-based with the
    default (always-off) local-parent-not-sampled sampler. Anything unexpected answers
    ``False``, the safe answer: the span is then made, and sampled, in the ordinary way.
    """
    from opentelemetry.sdk.trace import Tracer as SdkTracer
    from opentelemetry.sdk.trace.sampling import Decision, StaticSampler

    from tracekit._tracer import Tracer

    if type(tracer) is Tracer:
        if not tracer.fast:
            return drops_children_of_unsampled_local_parents(tracer._delegate)
        sampler = tracer._sampler
    elif type(tracer) is SdkTracer:
        metrics = getattr(tracer, "_tracer_metrics", None)
        if metrics is not None and type(metrics).__name__ != "NoOpTracerMetrics":
            return False
        sampler = tracer.sampler
    else:
        return False
    if not isinstance(sampler, ParentBased):
        return False
    delegate = getattr(sampler, "_local_parent_not_sampled", None)
    return isinstance(delegate, StaticSampler) and getattr(delegate, "_decision", None) is Decision.DROP
