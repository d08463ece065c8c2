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
