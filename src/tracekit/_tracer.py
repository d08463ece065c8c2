"""tracekit's tracer: the SDK's spans, made without the SDK tracer's per-call overhead.

Integrations start a span for every request, query and message, with attributes that
tracekit's own code built from semantic-convention names and plain values. The SDK's tracer
re-validates each of those attributes (about a third of the cost of a span), looks the
parent span up three times, and goes through its generic constructor. :class:`Tracer` makes
the same spans, instances of the SDK's own :class:`~opentelemetry.sdk.trace.Span` that
processors, exporters and application code cannot tell apart, with:

* the SDK tracer's sampler, id generator, trace flags, span limits, resource, scope and
  span processor, used exactly as the SDK uses them;
* *known attributes* (:meth:`Tracer.start_known_span`, :meth:`Tracer.set_known_attributes`),
  stored as given when nothing could change them: every value exactly a ``str``, ``bool``,
  ``int`` or ``float``, no value-length limit, and room under the count limit. Otherwise,
  and for every other attribute, the SDK's validation.

Known attributes are those tracekit's own code builds under semantic-convention names: their
keys are valid by construction, and the exact-type check above keeps a stray value (``None``,
``bytes``, a list) from reaching an exporter unvalidated. The test suite sets
:data:`VERIFY_KNOWN_ATTRIBUTES`, so every known attribute written in any test is also
checked against what the SDK would have stored.

The tracer writes the SDK span's fields itself, so it is used only where the installed SDK
lays its spans out as this module expects (checked against a span the SDK constructed);
anywhere else it hands every call to the SDK's tracer unchanged.
"""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from threading import Lock, RLock
from time import time_ns
from types import MappingProxyType
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    StaticSampler,
    TraceIdRatioBased,
)
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.util._decorator import _agnosticcontextmanager
from opentelemetry.util.types import Attributes

from tracekit import _fork
from tracekit._keep import KeepSampler
from tracekit._logging import warn_once
from tracekit._sampling import (
    RANDOMNESS_MASK,
    ProbabilitySampler,
    drops_children_of_unsampled_parents,
    has_threshold,
    parent_threshold_checked,
    unwrapped,
)

__all__ = ["VERIFY_KNOWN_ATTRIBUTES", "Tracer"]

logger = logging.getLogger("tracekit")

#: When true, every known attribute is checked against what the SDK would store, and a
#: difference raises :class:`AssertionError` (the test suite turns this on).
VERIFY_KNOWN_ATTRIBUTES = False

_new = object.__new__
_RLOCK = type(RLock())
_NO_ATTRIBUTES: Mapping[str, Any] = MappingProxyType({})
_SAMPLED = TraceFlags.SAMPLED
#: Value types stored as given; anything else (tuples included) goes through validation.
_PLAIN = frozenset({str, bool, int, float})
_get_current_span = trace.get_current_span
#: The context key under which the API keeps the current span (checked at take-over).
_SPAN_KEY: str = getattr(trace.propagation, "_SPAN_KEY", "")
_new_tuple = tuple.__new__
_MAX_TRACE_ID = (1 << 128) - 1
_MAX_SPAN_ID = (1 << 64) - 1
_DEFAULT_TRACE_STATE = trace.DEFAULT_TRACE_STATE
_UNSET = Status(StatusCode.UNSET)
#: W3C Trace Context Level 2's random-trace-id flag (older APIs have no name for it).
_RANDOM = getattr(TraceFlags, "RANDOM_TRACE_ID", 0x02)
#: Trace flags by (sampled, random trace id).
_FLAGS = {
    (sampled, random): TraceFlags((TraceFlags.SAMPLED if sampled else 0) | (_RANDOM if random else 0))
    for sampled in (False, True)
    for random in (False, True)
}


def _lock_like(lock: object) -> Callable[[], Any]:
    """The factory of locks of ``lock``'s kind (the SDK has used both)."""
    return RLock if isinstance(lock, _RLOCK) else Lock


def _always() -> bool:
    return True


#: Span fields made on first use: most spans never get an event or a link.
_ON_FIRST_USE = frozenset({"_events", "_links"})
#: Whether the SDK's span processors have the ``_on_ending`` hook that ``end()`` calls.
_ON_ENDING = hasattr(sdk_trace.SynchronousMultiSpanProcessor, "_on_ending")
_MULTI = sdk_trace.SynchronousMultiSpanProcessor
#: The base class's hooks, which do nothing: a processor that keeps them is not called.
_NO_ON_START = sdk_trace.SpanProcessor.on_start
_NO_ON_ENDING = getattr(sdk_trace.SpanProcessor, "_on_ending", None)
_sdk_logger = logging.getLogger(sdk_trace.__name__)
_FIRST_USE = _fork.lock()


class _OnFirstUse:
    """A span's event or link list, made when first read (most spans never get one)."""

    def __init__(self, stored: str, limit: str) -> None:
        self.stored = stored
        self.limit = limit

    def __get__(self, span: Any, owner: type | None = None) -> Any:
        if span is None:
            return self
        made = getattr(span, self.stored)
        if made is None:
            with _FIRST_USE:  # two threads adding the first event at once make one list
                made = getattr(span, self.stored)
                if made is None:
                    made = BoundedList(getattr(span._limits, self.limit))
                    setattr(span, self.stored, made)
        return made

    def __set__(self, span: Any, value: Any) -> None:
        setattr(span, self.stored, value)


class _Span(sdk_trace.Span):
    """An SDK span made by :class:`Tracer`; it behaves in every way as the SDK's own.

    Two things differ inside, neither visible through the API or to processors: the event
    and link lists are made when first used, and :meth:`end` hands processors the span
    itself rather than a copy (every mutator refuses an ended span, so it is as frozen as
    the copy would be). A queued span then costs one object fewer to make and hold.
    """

    # Made on first use through _OnFirstUse rather than __getattr__: a class with a
    # __getattr__ has every attribute read go through it, which keeps CPython from
    # specializing reads of the span's fields.
    _made_events: BoundedList[Any] | None = None
    _made_links: BoundedList[Any] | None = None
    _events = _OnFirstUse("_made_events", "max_events")
    _links = _OnFirstUse("_made_links", "max_links")

    def end(self, end_time: int | None = None) -> None:
        with self._lock:
            if self._start_time is None:
                raise RuntimeError("Calling end() on a not started span.")
            if self._end_time is not None:
                _sdk_logger.warning("Calling end() on an ended span.")
                return
            self._end_time = end_time if end_time is not None else time_ns()
            self._attributes._immutable = True  # type: ignore[union-attr]
        processor: sdk_trace.SpanProcessor = self._span_processor
        if type(processor) is _MULTI and len(processor._span_processors) == 1:
            # The usual provider: one processor, called without the loop around it.
            (processor,) = processor._span_processors
            if _ON_ENDING and type(processor)._on_ending is not _NO_ON_ENDING:
                processor._on_ending(self)
        elif _ON_ENDING:
            processor._on_ending(self)
        processor.on_end(self)

    def _readable_span(self) -> sdk_trace.ReadableSpan:
        return self

    @property
    def events(self) -> Sequence[sdk_trace.Event]:
        events = self._made_events
        return () if events is None else tuple(events)

    @property
    def links(self) -> Sequence[Link]:
        links = self._made_links
        return () if links is None else tuple(links)

    @property
    def dropped_events(self) -> int:
        events = self._made_events
        return 0 if events is None else int(events.dropped)

    @property
    def dropped_links(self) -> int:
        links = self._made_links
        return 0 if links is None else int(links.dropped)


_KNOWN_SPANS = (NonRecordingSpan, _Span)


def _span_context(trace_id: int, span_id: int, flags: TraceFlags, state: Any) -> SpanContext:
    """``SpanContext(trace_id, span_id, is_remote=False, ...)``, built as its ``__new__`` builds it."""
    return _new_tuple(
        SpanContext,
        (
            trace_id,
            span_id,
            False,
            flags,
            _DEFAULT_TRACE_STATE if state is None else state,
            0 < trace_id <= _MAX_TRACE_ID and 0 < span_id <= _MAX_SPAN_ID,
        ),
    )


def _decider(sampler: Sampler) -> Callable[[SpanContext | None, int], Decision] | None:
    """``sampler``'s decision for ``(valid parent or None, trace id)``, made in line.

    For the samplers the specification defines and tracekit builds from
    ``OTEL_TRACES_SAMPLER`` (always on / off, trace id ratio, parent-based over those), so
    a span costs no sampler call, no sampling result and no parent look-ups. The
    probability sampler is decided in line for root spans only, where no parent tracestate
    can hold explicit randomness (the root span's own tracestate is
    :func:`_root_trace_state`). ``None`` for any other sampler, whose ``should_sample`` is
    then called as the SDK calls it.
    """
    sample, drop = Decision.RECORD_AND_SAMPLE, Decision.DROP

    def plain(delegate: Sampler, root: bool = False) -> Callable[[int], Decision] | None:
        delegate = unwrapped(delegate)  # the threshold check is in Tracer._start
        method = type(delegate).should_sample
        if method is StaticSampler.should_sample:
            fixed: Decision = delegate._decision  # type: ignore[attr-defined]
            return lambda trace_id: fixed
        if method is TraceIdRatioBased.should_sample:
            limit, bound = TraceIdRatioBased.TRACE_ID_LIMIT, delegate.bound  # type: ignore[attr-defined]
            return lambda trace_id: sample if trace_id & limit < bound else drop
        if method is ProbabilitySampler.should_sample and root:
            threshold = delegate.threshold  # type: ignore[attr-defined]
            return lambda trace_id: sample if trace_id & RANDOMNESS_MASK >= threshold else drop
        return None

    if type(sampler) is KeepSampler:  # recorded rather than dropped: see tracekit._keep
        inner = _decider(sampler.sampler)
        if inner is None:
            return None
        record = Decision.RECORD_ONLY
        return lambda parent, trace_id: record if (made := inner(parent, trace_id)) is drop else made
    if type(sampler).should_sample is not ParentBased.should_sample:
        alone = plain(sampler)
        if alone is None:
            return None
        return lambda parent, trace_id: alone(trace_id)
    names = (
        "_root",
        "_remote_parent_sampled",
        "_remote_parent_not_sampled",
        "_local_parent_sampled",
        "_local_parent_not_sampled",
    )
    delegates = [plain(getattr(sampler, name), name == "_root") for name in names]
    if any(delegate is None for delegate in delegates):
        return None
    root, remote_sampled, remote_unsampled, local_sampled, local_unsampled = delegates

    def decide(parent: SpanContext | None, trace_id: int) -> Decision:
        if parent is None:
            return root(trace_id)  # type: ignore[misc]
        _, _, remote, flags, _, _ = parent
        if remote:
            chosen = remote_sampled if flags & _SAMPLED else remote_unsampled
        else:
            chosen = local_sampled if flags & _SAMPLED else local_unsampled
        return chosen(trace_id)  # type: ignore[misc]

    return decide


def _root_trace_state(sampler: Sampler) -> Any:
    """The tracestate of a root span ``sampler`` samples, when it decides in line: ``ot=th:<T>``."""
    if type(sampler) is KeepSampler:
        sampler = sampler.sampler
    root = getattr(sampler, "_root", None) if type(sampler) is ParentBased else sampler
    return root.root_trace_state if type(root) is ProbabilitySampler else None


def _attribute_store(
    limits: sdk_trace.SpanLimits, attributes: Mapping[str, Any], name: str
) -> BoundedAttributes:
    """The SDK's validated store of ``attributes``; one whose value cannot be converted is left out.

    The SDK converts a value of another type with ``str()``: when that raises, the span
    would be lost with it. Only that attribute is, and the call site is named once.
    """
    try:
        return BoundedAttributes(
            limits.max_span_attributes,
            attributes,
            immutable=False,
            max_value_len=limits.max_span_attribute_length,
        )
    except Exception:
        store = BoundedAttributes(
            limits.max_span_attributes, None, immutable=False, max_value_len=limits.max_span_attribute_length
        )
        for key, value in attributes.items():
            try:
                store[key] = value
            except Exception as exc:
                site = _call_site()
                warn_once(
                    f"unconvertible attribute {site} {key}",
                    "tracekit: attribute %r of span %r (%s) has a value that cannot be converted "
                    "(%s raised %s: %s); the span is kept without it",
                    key,
                    name,
                    site,
                    type(value).__qualname__,
                    type(exc).__qualname__,
                    exc,
                )
        return store


def _call_site() -> str:
    """``file:line`` of the first frame outside tracekit, OpenTelemetry and contextlib."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] in _OWN_MODULES:
        frame = frame.f_back  # type: ignore[assignment]
    return "unknown" if frame is None else f"{frame.f_code.co_filename}:{frame.f_lineno}"


_OWN_MODULES = frozenset({"tracekit", "opentelemetry", "contextlib", "wrapt"})


def _plain(attributes: Mapping[str, Any]) -> bool:
    """Whether every value is exactly a ``str``, ``bool``, ``int`` or ``float``."""
    for value in attributes.values():  # noqa: SIM110 (a loop costs less than all() over a generator)
        if value.__class__ not in _PLAIN:
            return False
    return True


def _verify(attributes: Mapping[str, Any]) -> None:
    stored = dict(BoundedAttributes(None, attributes, immutable=False))
    for key, value in attributes.items():
        if key not in stored or stored[key] != value or type(stored[key]) is not type(value):
            raise AssertionError(
                f"known attribute {key}={value!r} would be stored by the SDK as {stored.get(key)!r}"
            )


class Tracer(trace.Tracer):
    """Starts spans as ``tracer`` does; with less work per span when ``tracer`` is the SDK's.

    When ``tracer`` is not exactly the SDK's tracer, when it would not make spans the
    ordinary way (the SDK's own span metrics switched on), or when the installed SDK's span
    layout is not the expected one, every call is handed to ``tracer`` unchanged (known
    attributes then go through its validation too).
    """

    def __init__(self, tracer: trace.Tracer) -> None:
        self._delegate: trace.Tracer | None = tracer
        try:
            reason = self._take_over(tracer)
        except Exception as exc:  # an SDK this module does not know
            reason = f"{type(exc).__name__}: {exc}"
        if reason is None:
            self._delegate = None
        elif type(tracer) is sdk_trace.Tracer:
            logger.debug("tracekit: integrations use the SDK's tracer as it is (%s)", reason)
        self._drops_local, self._drops_remote = drops_children_of_unsampled_parents(self)
        self._last_dropped: object = None

    def _take_over(self, tracer: trace.Tracer) -> str | None:
        """Prepare to make ``tracer``'s spans; why it cannot, or ``None``."""
        if type(tracer) is not sdk_trace.Tracer:
            return "not the SDK's tracer"
        metrics = getattr(tracer, "_tracer_metrics", None)
        if metrics is not None and type(metrics).__name__ != "NoOpTracerMetrics":
            return "the SDK's span metrics are on"
        # Read at every span, as the SDK does: a fork updates the resource, a tracer
        # configurator may switch the tracer off.
        self._sdk = tracer
        self._enabled = getattr(tracer, "_is_enabled", _always)
        limits: sdk_trace.SpanLimits = tracer._span_limits
        self._sampler = tracer.sampler
        self._decide = _decider(self._sampler)
        self._root_state = _root_trace_state(self._sampler)
        self._ids = tracer.id_generator
        # The SDK's default generator draws from the random module: drawn here in line.
        self._random_bits = random.getrandbits if type(self._ids) is RandomIdGenerator else None
        # Trace ids flagged random (W3C Trace Context Level 2): those drawn here, and a
        # generator's that says so.
        self._random_ids = self._random_bits is not None or bool(
            getattr(self._ids, "is_trace_id_random", bool)()
        )
        self._processor = tracer.span_processor
        self._limits = limits
        # Known attributes go in as given when no limit could change them.
        self._max_known = (
            -1
            if limits.max_span_attribute_length is not None
            else (1 << 62 if limits.max_span_attributes is None else limits.max_span_attributes)
        )
        self._scope_info = tracer.instrumentation_info
        self._scope = tracer._instrumentation_scope
        # The SDK's span metrics arrived in 1.40, with a span field of their own.
        self._end_metrics_field = False
        self._span_lock: Callable[[], Any] = Lock
        return self._layout_mismatch(tracer)

    def _layout_mismatch(self, tracer: sdk_trace.Tracer) -> str | None:
        """How the installed SDK's spans differ from what :meth:`_build` writes; ``None`` if not."""
        reference = sdk_trace._Span(
            "tracekit layout check",
            INVALID_SPAN_CONTEXT,
            resource=tracer.resource,
            limits=self._limits,
            attributes={"a": 1},
        )
        self._end_metrics_field = "_record_end_metrics" in vars(reference)
        probe = NonRecordingSpan(INVALID_SPAN_CONTEXT)
        if trace.set_span_in_context(probe).get(_SPAN_KEY) is not probe:
            return "the API keeps the current span under another context key"
        flags = _FLAGS[True, False]
        for trace_id, span_id in ((1, 2), (0, 2), (1, 0), (1 << 128, 1)):
            made_context = _span_context(trace_id, span_id, flags, None)
            expected_context = SpanContext(trace_id, span_id, is_remote=False, trace_flags=flags)
            if made_context != expected_context or made_context.is_valid != expected_context.is_valid:
                return "SDK span contexts differ"
        self._span_lock = _lock_like(reference._lock)
        made = self._build(
            "tracekit layout check", INVALID_SPAN_CONTEXT, None, SpanKind.INTERNAL, {"a": 1}, True, (), 0
        )
        fields = set(vars(made)) | _ON_FIRST_USE
        if fields != set(vars(reference)):
            return f"SDK span fields differ: {sorted(fields ^ set(vars(reference)))}"
        store, expected = vars(made._attributes), vars(reference._attributes)
        if store != expected | {"_lock": store["_lock"]}:
            return "SDK attribute store fields differ"
        return None

    def dropped_child(self, context: Context | None = None) -> trace.Span | None:
        """What stands for a child of ``context``'s current span that would be dropped whatever
        it is; ``None`` if it might not be (see :meth:`drops_child_of`).

        The caller then makes no span: under a local parent the parent itself stands for the
        child, as what the child's context would carry (trace id, unsampled flag,
        tracestate) is the parent's already; under a remote parent, a non-recording span
        with a span id of its own, as W3C Trace Context has a service pass on its own id,
        not its caller's. Either way nothing of the trace is exported.
        """
        current: Any = _get_current_span() if context is None else context.get(_SPAN_KEY)
        if current.__class__ is not NonRecordingSpan or not self.drops_child_of(current):
            return None
        trace_id, _, remote, flags, state, _ = current.get_span_context()
        if remote:
            return NonRecordingSpan(_span_context(trace_id, random.getrandbits(64) or 1, flags, state))
        return current

    def dropped_root(self, context: Context | None = None) -> tuple[int, trace.Span | None]:
        """For a span that would be a root under ``context``: ``(0, stand-in)`` when the sampler
        drops it whatever its name, kind or attributes, else ``(trace id, None)``.

        The sampler's decision for a root rests on the trace id alone (the specification's
        samplers, decided in line), so it is made before the caller builds anything: the
        stand-in is a non-recording span with fresh ids that propagation passes on
        (unsampled flag, trace id); the trace id otherwise goes to :meth:`start_known_span`
        so that the span is the one just decided. ``(0, None)`` when ``context`` holds a
        valid parent or the sampler must see the span.
        """
        decide = self._decide
        if decide is None or self._delegate is not None:
            return 0, None
        if self._enabled is not _always and not self._enabled():
            return 0, None
        current: Any = _get_current_span() if context is None else context.get(_SPAN_KEY)
        if (
            current is not None
            and (type(current) in _KNOWN_SPANS or isinstance(current, trace.Span))
            and current.get_span_context().is_valid
        ):
            return 0, None
        draw = self._random_bits
        trace_id = (draw(128) if draw is not None else 0) or self._ids.generate_trace_id()
        if decide(None, trace_id) is not Decision.DROP:
            return trace_id, None
        span_id = (draw(64) if draw is not None else 0) or self._ids.generate_span_id()
        return 0, NonRecordingSpan(_span_context(trace_id, span_id, _FLAGS[False, self._random_ids], None))

    def drops_child_of(self, parent: NonRecordingSpan) -> bool:
        """Whether every child of ``parent`` would be dropped, whatever its name, kind or attributes.

        True of an unsampled parent when the sampler drops every child of one (the default
        parent-based samplers; under a remote parent only when both unsampled-parent
        samplers drop, and the parent carries no sampling threshold the child would erase).
        """
        if parent is self._last_dropped:  # a loop under one parent pays for the checks once
            return True
        _, _, remote, flags, state, valid = parent.get_span_context()
        if not valid or flags & _SAMPLED:
            return False
        if remote:
            if not self._drops_remote or (state and has_threshold(state)):
                return False
        elif not self._drops_local:
            return False
        self._last_dropped = parent
        return True

    @property
    def fast(self) -> bool:
        """Whether this tracer makes the spans itself rather than handing calls on."""
        return self._delegate is None

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        """As the SDK's ``Tracer.start_span``: every attribute is validated."""
        return self._start(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            False,
            record_exception,
            set_status_on_exception,
        )

    def start_known_span(
        self,
        name: str,
        context: Context | None,
        kind: SpanKind,
        attributes: Mapping[str, Any],
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        root_trace_id: int = 0,
    ) -> trace.Span:
        """A span whose initial ``attributes`` are known attributes (see the module's docstring).

        ``attributes`` is copied, so a cached mapping can be passed. ``root_trace_id`` is the
        trace id :meth:`dropped_root` drew and kept for this span, if it is a root.
        """
        return self._start(
            name, context, kind, attributes, links, start_time, True, root_trace_id=root_trace_id
        )

    def set_known_attributes(self, span: trace.Span, attributes: Mapping[str, Any]) -> None:
        """``span.set_attributes(attributes)`` for known attributes: stored as given where it can."""
        if type(span) is _Span:
            store: BoundedAttributes = span._attributes  # type: ignore[assignment]
            if store.max_value_len is None and _plain(attributes):
                if VERIFY_KNOWN_ATTRIBUTES:
                    _verify(attributes)
                with span._lock:
                    if span._end_time is None and (
                        store.maxlen is None or len(store._dict) + len(attributes) <= store.maxlen
                    ):
                        store._dict.update(attributes)
                        return
        span.set_attributes(attributes)

    @_agnosticcontextmanager
    def start_as_current_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        """As the SDK's ``Tracer.start_as_current_span``."""
        span = self.start_span(
            name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception
        )
        with trace.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current

    def _start(
        self,
        name: str,
        context: Context | None,
        kind: SpanKind,
        attributes: Attributes,
        links: Sequence[Link] | None,
        start_time: int | None,
        known: bool,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        root_trace_id: int = 0,
    ) -> trace.Span:
        if self._delegate is not None:
            return self._delegate.start_span(
                name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception
            )
        # get_current_span(context), read directly from the context when one is given.
        current: Any = _get_current_span() if context is None else context.get(_SPAN_KEY)
        if type(current) in _KNOWN_SPANS or isinstance(current, trace.Span):
            parent: SpanContext | None = current.get_span_context()
        else:
            parent = None
        if self._enabled is not _always and not self._enabled():
            return NonRecordingSpan(INVALID_SPAN_CONTEXT if parent is None else parent)
        draw = self._random_bits
        trace_state = None
        if parent is not None:
            trace_id, _, _, flags, trace_state, valid = parent
            if not valid:
                parent = trace_state = None
        if parent is None:
            # A zero draw (probability 2**-128) is the invalid id: the generator draws again.
            trace_id = (
                root_trace_id or (draw(128) if draw is not None else 0) or self._ids.generate_trace_id()
            )
            random_id = self._random_ids
        else:
            random_id = bool(flags & _RANDOM)
        links = links or ()
        decide = self._decide
        given: Mapping[str, Any]
        if decide is not None:
            decision = decide(parent, trace_id)
            given = attributes or _NO_ATTRIBUTES
            if parent is None:
                if decision is Decision.RECORD_AND_SAMPLE:
                    trace_state = self._root_state
            elif parent[2] and trace_state:  # a remote parent's tracestate, checked once per trace here
                trace_state = parent_threshold_checked(trace_state, trace_id, bool(flags & _SAMPLED))
        else:
            result = self._sampler.should_sample(context, trace_id, name, kind, attributes, links)
            decision, trace_state = result.decision, result.trace_state
            # The built-in samplers hand the span's attributes through unchanged, as a view.
            given = result.attributes or _NO_ATTRIBUTES
        span_context = _span_context(
            trace_id,
            (draw(64) if draw is not None else 0) or self._ids.generate_span_id(),
            _FLAGS[decision is Decision.RECORD_AND_SAMPLE, random_id],
            trace_state,
        )
        if decision is Decision.DROP:
            return NonRecordingSpan(span_context)
        span = self._build(
            name,
            span_context,
            parent,
            kind,
            given,
            known and attributes is not None and len(given) == len(attributes),
            links,
            time_ns() if start_time is None else start_time,
        )
        if not (record_exception and set_status_on_exception):
            span._record_exception = record_exception
            span._set_status_on_exception = set_status_on_exception
        processor: sdk_trace.SpanProcessor = self._processor
        if type(processor) is _MULTI and len(processor._span_processors) == 1:
            (processor,) = processor._span_processors
            if type(processor).on_start is _NO_ON_START:
                return span
        processor.on_start(span, parent_context=context)
        return span

    def _build(
        self,
        name: str,
        span_context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: Mapping[str, Any],
        known: bool,
        links: Sequence[Link],
        start_time: int,
    ) -> _Span:
        """The started span, its fields written as the SDK's constructor writes them.

        One attribute at a time and in the constructor's order, not through ``__dict__``:
        CPython then keeps the fields in the object itself, with keys shared by every span,
        which makes a queued span about a third smaller and its fields quicker to read.
        """
        if known and len(attributes) <= self._max_known and _plain(attributes):
            if VERIFY_KNOWN_ATTRIBUTES:
                _verify(attributes)
            # An empty store made by the SDK (no value-length limit, or the attributes would
            # not be known), then filled without validation.
            store = BoundedAttributes(self._limits.max_span_attributes, None, immutable=False)
            store._dict = dict(attributes)
        else:
            store = _attribute_store(self._limits, attributes, name)
        span = _new(_Span)
        span._name = name
        span._context = span_context
        span._kind = kind
        span._instrumentation_info = self._scope_info
        span._instrumentation_scope = self._scope
        span._parent = parent
        span._start_time = start_time
        span._end_time = None
        span._attributes = store
        span._resource = self._sdk.resource
        span._status = _UNSET
        span._sampler = self._sampler
        span._trace_config = None
        span._record_exception = True
        span._set_status_on_exception = True
        span._span_processor = self._processor
        span._limits = self._limits
        span._lock = self._span_lock()
        if self._end_metrics_field:
            span._record_end_metrics = None
        if links:
            span._links = span._new_links(links)
        return span
