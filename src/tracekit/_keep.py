"""Keep the failing and the slow traces a low head sampling ratio would lose (opt-in).

With ``TRACEKIT_KEEP_ERRORS`` or ``TRACEKIT_KEEP_SLOW_MS`` set, a span the head sampler
drops is recorded anyway (:class:`KeepSampler` turns ``DROP`` into ``RECORD_ONLY``): its
context still says *not sampled*, so what is propagated to other services is unchanged.
:class:`KeepProcessor` holds those spans per trace until the trace's local root (its first
span in this process) ends, then hands them to the export processors if one of them has an
ERROR status or the local root lasted at least the threshold, each with
``tracekit.sampling.kept`` = ``error`` or ``slow``; otherwise they are discarded.

Memory is bounded: past ``TRACEKIT_KEEP_BUFFER_SPANS`` held spans, the oldest traces are
discarded whole and counted (:attr:`KeepProcessor.evicted`, in :func:`tracekit.stats`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import Link, SpanContext, SpanKind, StatusCode, TraceFlags, TraceState
from opentelemetry.util.types import Attributes

from tracekit import _fork
from tracekit._processor import BatchSpanProcessor

__all__ = ["KEPT_ATTRIBUTE", "KeepProcessor", "KeepSampler"]

#: Why an unsampled trace was exported: ``error`` or ``slow``.
KEPT_ATTRIBUTE = "tracekit.sampling.kept"
_SAMPLED = TraceFlags.SAMPLED
_ERROR = StatusCode.ERROR


class KeepSampler(Sampler):
    """``sampler``'s decisions, every ``DROP`` made ``RECORD_ONLY``: recorded, not sampled."""

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
        if result.decision is not Decision.DROP:
            return result
        return SamplingResult(Decision.RECORD_ONLY, result.attributes, result.trace_state)

    def get_description(self) -> str:
        return f"KeepUnsampled{{{self.sampler.get_description()}}}"


class _Held:
    """The ended spans of one unsampled trace, and whether one of them failed."""

    __slots__ = ("error", "spans")

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.error = False


class KeepProcessor(SpanProcessor):
    """Hold unsampled traces until their local root ends; export the failing and the slow ones.

    ``slow_ms`` is the local root duration from which a trace is kept (``None``: never for
    being slow); ``max_spans`` bounds the spans held at once. Kept spans go to
    ``downstream``, the export processors, as copies marked sampled (which is what they
    queue) and carrying :data:`KEPT_ATTRIBUTE`.
    """

    def __init__(
        self,
        downstream: Sequence[BatchSpanProcessor],
        *,
        keep_errors: bool,
        slow_ms: float | None,
        max_spans: int,
    ) -> None:
        self._downstream = tuple(downstream)
        self._keep_errors = keep_errors
        self._slow_ns = None if slow_ms is None else int(slow_ms * 1_000_000)
        self._max_spans = max(1, max_spans)
        self._lock = _fork.lock()
        self._reset()
        _fork.in_child(self, KeepProcessor._reset)

    def _reset(self) -> None:
        # A forked child holds nothing of its parent's: those traces end in the parent.
        self._held: dict[int, _Held] = {}
        self._held_spans = 0
        #: Unsampled traces exported because a span failed or the local root was slow.
        self.kept = 0
        #: Unsampled traces discarded unjudged because the buffer was full.
        self.evicted = 0

    @property
    def held_spans(self) -> int:
        """Spans held now, waiting for their local root to end."""
        return self._held_spans

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or context.trace_flags & _SAMPLED:
            return  # sampled spans are the export processors' already
        parent = span.parent
        trace_id = context.trace_id
        failed = span.status.status_code is _ERROR
        with self._lock:
            if parent is not None and not parent.is_remote:
                held = self._held.get(trace_id)
                if held is None:
                    held = self._held[trace_id] = _Held()
                held.spans.append(span)
                held.error = held.error or failed
                self._held_spans += 1
                if self._held_spans > self._max_spans:
                    self._evict()
                return
            held = self._held.pop(trace_id, None)  # the local root: the trace is judged now
            if held is not None:
                self._held_spans -= len(held.spans)
        spans = [span] if held is None else [*held.spans, span]
        reason = self._reason(failed or (held is not None and held.error), span)
        if reason is not None:
            self._export(spans, reason)

    def _evict(self) -> None:
        """Discard the oldest traces until the held spans fit the bound again (lock held)."""
        held = self._held
        while self._held_spans > self._max_spans and held:
            oldest = next(iter(held))
            self._held_spans -= len(held.pop(oldest).spans)
            self.evicted += 1

    def _reason(self, failed: bool, root: ReadableSpan) -> str | None:
        if self._keep_errors and failed:
            return "error"
        slow, start, end = self._slow_ns, root.start_time, root.end_time
        if slow is not None and start is not None and end is not None and end - start >= slow:
            return "slow"
        return None

    def _export(self, spans: list[ReadableSpan], reason: str) -> None:
        self.kept += 1
        copies = [_kept_copy(span, reason) for span in spans]
        for processor in self._downstream:
            for copy in copies:
                processor.on_end(copy)

    def shutdown(self, timeout_millis: int = 30000) -> None:
        """Discard the traces still held: their local roots never ended."""
        with self._lock:
            self._held.clear()
            self._held_spans = 0

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing to flush: a held trace is judged when its local root ends, not before."""
        return True


def _kept_copy(span: ReadableSpan, reason: str) -> ReadableSpan:
    """``span`` marked sampled, with :data:`KEPT_ATTRIBUTE`; its dropped counts are kept."""
    context = span.context
    attributes = BoundedAttributes(None, span.attributes, immutable=False)
    attributes[KEPT_ATTRIBUTE] = reason
    attributes.dropped = span.dropped_attributes
    return ReadableSpan(
        name=span.name,
        context=SpanContext(
            context.trace_id,
            context.span_id,
            is_remote=False,
            trace_flags=TraceFlags(context.trace_flags | _SAMPLED),
            trace_state=context.trace_state,
        ),
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=_bounded(span.events, span.dropped_events),
        links=_bounded(span.links, span.dropped_links),
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


_Item = TypeVar("_Item")


def _bounded(items: Sequence[_Item], dropped: int) -> BoundedList[_Item]:
    bounded: BoundedList[_Item] = BoundedList.from_seq(None, items)
    bounded.dropped = dropped
    return bounded
