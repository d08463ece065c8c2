"""Sampler names (OTEL_TRACES_SAMPLER) to OpenTelemetry SDK samplers."""

from __future__ import annotations

from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)

__all__ = ["make_sampler"]


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

    True for an SDK tracer whose sampler is parent-based with the default (always-off)
    local-parent-not-sampled sampler, and whose own span metrics are off (they would count
    the dropped span). Anything unexpected answers ``False``, the safe answer: the span is
    then made, and sampled, in the ordinary way.
    """
    from opentelemetry.sdk.trace import Tracer
    from opentelemetry.sdk.trace.sampling import Decision, StaticSampler

    if type(tracer) is not Tracer or not isinstance(tracer.sampler, ParentBased):
        return False
    delegate = getattr(tracer.sampler, "_local_parent_not_sampled", None)
    if not isinstance(delegate, StaticSampler) or getattr(delegate, "_decision", None) is not Decision.DROP:
        return False
    metrics = getattr(tracer, "_tracer_metrics", None)
    return metrics is None or type(metrics).__name__ == "NoOpTracerMetrics"
