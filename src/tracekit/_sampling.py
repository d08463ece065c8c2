"""Sampler names (OTEL_TRACES_SAMPLER) to samplers, and the consistent probability sampler.

``traceidratio`` is the specification's ``ProbabilitySampler`` (the successor of
``TraceIdRatioBased``, see the OpenTelemetry specification's *TraceState: Probability
Sampling*): the decision compares the trace's 56-bit randomness ``R`` (the ``rv`` sub-key
of the ``ot`` tracestate entry, or else the 56 low bits of the trace id) with a rejection
threshold ``T`` derived from the ratio, and a sampled span records ``ot=th:<T>`` in its
tracestate, so every later stage knows the probability it was sampled with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    StaticSampler,
)
from opentelemetry.trace import Link, SpanKind, TraceState, get_current_span
from opentelemetry.util.types import Attributes

from tracekit import _compat
from tracekit._logging import warn_once

__all__ = [
    "AdjustingSampler",
    "ProbabilitySampler",
    "drops_children_of_unsampled_parents",
    "has_threshold",
    "make_sampler",
    "parent_threshold_checked",
    "probability_to_threshold",
    "randomness",
    "unwrapped",
]

#: 2**56: the number of distinct randomness values, and the threshold that rejects them all.
MAX_THRESHOLD = 1 << 56
RANDOMNESS_MASK = MAX_THRESHOLD - 1
#: Significant hexadecimal digits of an encoded threshold (the specification's default).
PRECISION = 4
_RANDOM_FLAG = 0x02
_SAMPLED_FLAG = 0x01
_HEX = frozenset("0123456789abcdef")


def probability_to_threshold(probability: float, precision: int = PRECISION) -> int:
    """The 56-bit rejection threshold for ``probability``, rounded to ``precision`` hex digits.

    Digits are counted after the leading ``f`` digits a small probability has, so 1% and
    0.01% are as precise as 10%. ``0`` samples everything; ``MAX_THRESHOLD`` (probability 0,
    not a probability the specification defines) nothing.
    """
    if probability >= 1:
        return 0
    if probability <= 0:
        return MAX_THRESHOLD
    _, exponent = math.frexp(probability)
    digits = max(1, min(14, precision + exponent // -4))
    scale = 1 << (4 * digits)
    numerator, denominator = probability.as_integer_ratio()  # exact: no float rounding
    # (1 - probability) * scale, rounded half up, in integers.
    rejected = (2 * (denominator - numerator) * scale + denominator) // (2 * denominator)
    rejected = min(rejected, scale - 1)  # a probability under 2**-56 still samples something
    return rejected << (4 * (14 - digits))


def _encoded(threshold: int) -> str:
    """``threshold`` as the ``th`` sub-key writes it: 14 hex digits, trailing zeros removed."""
    return f"{threshold:014x}".rstrip("0") or "0"


def _ot_fields(trace_state: TraceState | None) -> dict[str, str]:
    """The sub-keys of the ``ot`` tracestate entry (``th:c;rv:...``), in order."""
    value = trace_state.get("ot") if trace_state is not None else None
    if not value:
        return {}
    fields: dict[str, str] = {}
    for item in value.split(";"):
        key, colon, sub_value = item.partition(":")
        if colon:
            fields.setdefault(key, sub_value)
    return fields


def _explicit_randomness(fields: dict[str, str]) -> int | None:
    value = fields.get("rv")
    if value is None or len(value) != 14 or not _HEX.issuperset(value):
        return None
    return int(value, 16)


def _threshold(fields: dict[str, str]) -> int | None:
    value = fields.get("th")
    if value is None or not 1 <= len(value) <= 14 or not _HEX.issuperset(value):
        return None
    return int(value.ljust(14, "0"), 16)


def randomness(trace_id: int, trace_state: TraceState | None) -> int:
    """The trace's randomness ``R``: the explicit ``rv`` value if valid, else the trace id's 56 low bits."""
    explicit = _explicit_randomness(_ot_fields(trace_state))
    return trace_id & RANDOMNESS_MASK if explicit is None else explicit


def _with_threshold(trace_state: TraceState | None, th: str | None) -> TraceState | None:
    """``trace_state`` with ``th`` set in its ``ot`` entry (``None``: erased), other sub-keys kept."""
    fields = _ot_fields(trace_state)
    if th is None and "th" not in fields:
        return trace_state
    fields.pop("th", None)
    items = ([f"th:{th}"] if th is not None else []) + [f"{key}:{value}" for key, value in fields.items()]
    others = [(key, value) for key, value in (trace_state or {}).items() if key != "ot"]
    if not items:
        return _compat.trace_state(others)
    # W3C: a changed member moves to the front; room is made by dropping the right-most.
    return _compat.trace_state([("ot", ";".join(items)), *others[:31]])


def parent_threshold_checked(trace_state: TraceState, trace_id: int, sampled: bool) -> TraceState:
    """A parent's tracestate with its threshold erased where it is apparently inconsistent.

    A sampled parent whose ``th`` its randomness does not reach, or an unsampled parent
    with a ``th`` at all, did not get that threshold from a consistent sampler: the
    threshold would mislead every later stage, so parent-based children drop it.
    """
    fields = _ot_fields(trace_state)
    if "th" not in fields:
        return trace_state
    threshold = _threshold(fields)
    if sampled and threshold is not None and randomness(trace_id, trace_state) >= threshold:
        return trace_state
    return _with_threshold(trace_state, None) or TraceState()


def has_threshold(trace_state: TraceState) -> bool:
    """Whether ``trace_state``'s ``ot`` entry has a ``th`` sub-key."""
    return "th" in _ot_fields(trace_state)


class AdjustingSampler(Sampler):
    """Another sampler's results, each adjusted by :meth:`adjust` (what a subclass writes)."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        result = self.sampler.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )
        return self.adjust(result, parent_context, trace_id)

    def adjust(self, result: SamplingResult, parent_context: Context | None, trace_id: int) -> SamplingResult:
        """``result``, or the result to use instead."""
        raise NotImplementedError

    def get_description(self) -> str:
        return self.sampler.get_description()


class _RemoteParentThreshold(AdjustingSampler):
    """``sampler``'s decision for a remote parent, the parent's threshold checked on the way.

    The parent-based samplers pass the parent's tracestate on: this erases a ``th`` that
    the parent's sampled flag or randomness contradicts (see :func:`parent_threshold_checked`).
    """

    def adjust(self, result: SamplingResult, parent_context: Context | None, trace_id: int) -> SamplingResult:
        state = result.trace_state
        if not state:
            return result
        flags = get_current_span(parent_context).get_span_context().trace_flags
        checked = parent_threshold_checked(state, trace_id, bool(flags & _SAMPLED_FLAG))
        return result if checked is state else SamplingResult(result.decision, result.attributes, checked)


def unwrapped(sampler: Sampler) -> Sampler:
    """The sampler that decides for ``sampler`` (itself, or the one a threshold check wraps)."""
    return sampler.sampler if type(sampler) is _RemoteParentThreshold else sampler


class ProbabilitySampler(Sampler):
    """The specification's consistent probability sampler: samples when ``R >= T``.

    ``ratio`` is rounded to a threshold of four significant hex digits (10% samples
    0.100006...); a sampled span gets ``ot=th:<T>`` in its tracestate, an unsampled one has
    any ``th`` erased. Every trace this sampler keeps at some ratio is kept at any higher
    ratio, in any SDK that implements the specification. It ignores the parent's sampled
    flag: wrap it in ``ParentBased`` to follow the caller's decision.
    """

    def __init__(self, ratio: float) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise ValueError("ratio must be in range [0.0, 1.0].")
        self._ratio = ratio
        self.threshold = probability_to_threshold(ratio)
        #: The ``th`` value sampled spans carry, or ``None`` when nothing is sampled.
        self.th = None if self.threshold >= MAX_THRESHOLD else _encoded(self.threshold)
        self._root_state = TraceState([("ot", f"th:{self.th}")]) if self.th is not None else None

    @property
    def ratio(self) -> float:
        return self._ratio

    @property
    def root_trace_state(self) -> TraceState | None:
        """The tracestate of a root span this sampler samples: ``ot=th:<T>``."""
        return self._root_state

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        parent = get_current_span(parent_context).get_span_context()
        if parent.is_valid:
            state: TraceState | None = parent.trace_state
            if not parent.trace_flags & _RANDOM_FLAG and _explicit_randomness(_ot_fields(state)) is None:
                warn_once(
                    "probability sampler presumes randomness",
                    "tracekit: the traceidratio sampler is deciding for a span whose parent's trace id "
                    "is not flagged random and has no explicit randomness (ot=rv:...); it presumes "
                    "the trace id is random. Callers that use W3C Trace Context Level 2 set the flag",
                )
        else:
            state = None
        sampled = self.th is not None and randomness(trace_id, state) >= self.threshold
        if state is None:
            new_state = self._root_state if sampled else None
        else:
            new_state = _with_threshold(state, self.th if sampled else None)
        return SamplingResult(Decision.RECORD_AND_SAMPLE if sampled else Decision.DROP, attributes, new_state)

    def get_description(self) -> str:
        return f"ProbabilitySampler{{{self._ratio}}}"


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
        root = ProbabilitySampler(ratio)
    if not name.startswith("parentbased_"):
        return root
    return ParentBased(
        root,
        remote_parent_sampled=_RemoteParentThreshold(ALWAYS_ON),
        remote_parent_not_sampled=_RemoteParentThreshold(ALWAYS_OFF),
    )


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
        delegate = unwrapped(delegate) if isinstance(delegate, Sampler) else delegate
        return isinstance(delegate, StaticSampler) and getattr(delegate, "_decision", None) is Decision.DROP

    local = drops("_local_parent_not_sampled")
    return local, local and drops("_remote_parent_not_sampled")
