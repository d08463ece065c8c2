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
from opentelemetry.sdk.trace.sampling import Decision, SamplingResult
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import Span, SpanContext, StatusCode, TraceFlags

from tracekit import _fork
from tracekit._processor import BatchSpanProcessor
from tracekit._sampling import AdjustingSampler

__all__ = ["KEPT_ATTRIBUTE", "KeepProcessor", "KeepSampler"]

#: Why an unsampled trace was exported: ``error`` or ``slow``.
KEPT_ATTRIBUTE = "tracekit.sampling.kept"
_SAMPLED = TraceFlags.SAMPLED
_ERROR = StatusCode.ERROR


class KeepSampler(AdjustingSampler):
    """``sampler``'s decisions, every ``DROP`` made ``RECORD_ONLY``: recorded, not sampled."""

    def adjust(self, result: SamplingResult, parent_context: Context | None, trace_id: int) -> SamplingResult:
        if result.decision is not Decision.DROP:
            return result
        return SamplingResult(Decision.RECORD_ONLY, result.attributes, result.trace_state)

    def get_description(self) -> str:
        return f"KeepUnsampled{{{self.sampler.get_description()}}}"


class _Held:
    """One local root's unsampled spans: those ended so far, whether one failed, the verdict."""

    __slots__ = ("error", "root", "spans", "verdict")

    def __init__(self, root: int) -> None:
        #: The local root's span id.
        self.root = root
        self.spans: list[ReadableSpan] = []
        self.error = False
        #: ``None`` while the local root runs; then ``error``, ``slow`` or ``""`` (discarded).
        self.verdict: str | None = None


_DISCARDED = ""


class KeepProcessor(SpanProcessor):
    """Hold unsampled local traces until their local root ends; export the failing and slow ones.

    A local trace is a local root (a span with no parent or a remote one) and the spans
    started under it in this process: two requests of one trace are judged apart. Spans
    ending after their local root follow its verdict. ``slow_ms`` is the local root duration
    from which a trace is kept (``None``: never for being slow); ``max_spans`` bounds the
    ended spans held at once, past which the oldest local traces are discarded whole. Kept
    spans go to ``downstream``, the export processors, as copies marked sampled (which is
    what they queue) and carrying :data:`KEPT_ATTRIBUTE`.
    """

    def __init__(
        self,
        downstream: Sequence[BatchSpanProcessor],
        *,
        keep_errors: bool,
        slow_ms: int | None,
        max_spans: int,
    ) -> None:
        self._downstream = tuple(downstream)
        self._keep_errors = keep_errors
        self._slow_ns = None if slow_ms is None else slow_ms * 1_000_000
        self._max_spans = max(1, max_spans)
        self._lock = _fork.lock()
        self._reset()
        _fork.in_child(self, KeepProcessor._reset)

    def _reset(self) -> None:
        # A forked child holds nothing of its parent's: those traces end in the parent.
        #: The local traces whose root still runs, oldest first, by root span id.
        self._open: dict[int, _Held] = {}
        #: The local trace of every unsampled span started and not yet ended, by span id.
        self._trace_of: dict[int, _Held] = {}
        self._held_spans = 0
        #: Unsampled local traces exported because a span failed or the local root was slow.
        self.kept = 0
        #: Unsampled local traces discarded before their root ended, the buffer being full.
        self.evicted = 0

    @property
    def held_spans(self) -> int:
        """Ended spans held now, waiting for their local root to end."""
        return self._held_spans

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        context = span.get_span_context()
        if context.trace_flags & _SAMPLED:
            return  # sampled spans are the export processors' already
        parent = span.parent if isinstance(span, ReadableSpan) else None
        span_id = context.span_id
        with self._lock:
            if parent is None or parent.is_remote:
                held = self._open[span_id] = _Held(span_id)
            else:
                found = self._trace_of.get(parent.span_id)
                if found is None:  # its local trace was evicted, or started before keeping did
                    return
                held = found
            self._trace_of[span_id] = held

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or context.trace_flags & _SAMPLED:
            return
        with self._lock:
            held = self._trace_of.pop(context.span_id, None)
            if held is None or held.verdict == _DISCARDED:
                return
            if held.verdict is None:
                held.spans.append(span)
                held.error = held.error or span.status.status_code is _ERROR
                if context.span_id != held.root:
                    self._held_spans += 1
                    if self._held_spans > self._max_spans:
                        self._evict()
                    return
                # The local root ended: the trace is judged now.
                del self._open[held.root]
                self._held_spans -= len(held.spans) - 1
                held.verdict = self._verdict(held, span)
                spans, held.spans = held.spans, []
                if held.verdict:
                    self.kept += 1
            else:  # a span ending after its local root, in a kept trace
                spans = [span]
        if held.verdict:
            self._export(spans, held.verdict)

    def _evict(self) -> None:
        """Discard the oldest local traces until the held spans fit again (lock held)."""
        while self._held_spans > self._max_spans and self._open:
            oldest = self._open.pop(next(iter(self._open)))
            self._held_spans -= len(oldest.spans)
            oldest.spans = []
            oldest.verdict = _DISCARDED
            self.evicted += 1

    def _verdict(self, held: _Held, root: ReadableSpan) -> str:
        if self._keep_errors and held.error:
            return "error"
        slow, start, end = self._slow_ns, root.start_time, root.end_time
        if slow is not None and start is not None and end is not None and end - start >= slow:
            return "slow"
        return _DISCARDED

    def _export(self, spans: list[ReadableSpan], reason: str) -> None:
        copies = [_kept_copy(span, reason) for span in spans]
        for processor in self._downstream:
            for copy in copies:
                processor.on_end(copy)

    def shutdown(self, timeout_millis: int = 30000) -> None:
        """Discard the traces still held: their local roots never ended."""
        with self._lock:
            for held in self._open.values():
                held.spans = []
                held.verdict = _DISCARDED
            self._open.clear()
            self._trace_of.clear()
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
