"""Manual spans: ``@tracekit.traced`` and ``tracekit.span()``.

Every span made here goes through the same two functions: :func:`_start` creates it (or
decides that no span is needed) and :func:`_end` records the outcome and ends it. The
wrappers only differ in how they call the user's function (plainly, awaited, or driven
step by step for generators), and the right wrapper is chosen once, at decoration time.

Cost when there is nothing to record
------------------------------------
``_state.tracer`` is looked up at every call (it is swapped by ``configure()`` and
``shutdown()``), so functions decorated at import time start producing spans once tracing
is configured. Until then the wrapper is one attribute lookup and one class check away
from a plain call.

Inside an unsampled trace the SDK would still build a non-recording span, a new context
and a context token for every call, only to throw them away. When the current span is a
non-recording *local* span whose trace is not sampled, and the tracer's sampler is
parent-based with a local-parent-not-sampled sampler that always drops, the child is
dropped whatever its name, kind, attributes or links, so no span is made at all: the
function runs in the current context, whose span carries the same trace id, the same
unsampled flag, the same trace state and the same ``is_remote=False`` as the dropped
child would have. Every sampler deeper down therefore decides exactly as it would have,
and spans made inside still belong to the same unsampled trace. The one difference is the
span id that an outgoing ``traceparent`` carries: the parent's instead of a fresh id that
nobody ever records, which is what the OpenTelemetry API itself does when no SDK is
installed.

The same holds under an unsampled *remote* parent (the upstream service decided not to
sample, and the context it sent is current) when the remote-parent-not-sampled sampler
always drops as well: spans made inside then see the remote parent instead of a dropped
local child, and both are dropped alike, unless the remote parent's tracestate carries a
sampling threshold (``ot=th:``) that the child would have erased. The shortcut is not taken
when the parent is recording (the user could add to it), sampled or invalid, when the
sampler is anything else, or when the SDK's own span metrics are switched on (they count
dropped spans). The decision is :meth:`tracekit._tracer.Tracer.drops_child_of`'s, which
the integrations use too.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanKind
from opentelemetry.util.types import Attributes, AttributeValue

from tracekit import _state
from tracekit._context import current_context
from tracekit._logging import logger
from tracekit._safety import report
from tracekit._spans import record_exception

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context

__all__ = ["span", "traced"]

_D = TypeVar("_D", bound="Callable[..., Any] | staticmethod[Any, Any] | classmethod[Any, Any, Any]")

#: Argument names that are never recorded (matched case-insensitively, anywhere in the name).
SECRET_NAME = re.compile(
    "password|passwd|secret|token|api_key|apikey|authorization|auth|credential|private_key",
    re.IGNORECASE,
)

_INTEGRATION = "manual spans"

# Bound once: the per-call paths below read module globals, not attribute chains.
_NoOpTracer = _state.Unconfigured
_get_current = current_context
_get_current_span = trace.get_current_span
_set_span_in_context = trace.set_span_in_context
_attach = otel_context.attach
_detach = otel_context.detach
_SAMPLED = trace.TraceFlags.SAMPLED
try:
    # The context key the API stores the current span under. Only the shortcut for
    # unsampled traces reads it directly (trace.get_current_span costs four times as
    # much); were it ever renamed, the shortcut would simply never be taken.
    from opentelemetry.trace.propagation import _SPAN_KEY
except ImportError:  # pragma: no cover
    _SPAN_KEY = "current-span-not-found"


class _Spec:
    """Everything about a span that is known before the call: computed once."""

    __slots__ = ("attributes", "kind", "links", "name", "record_args", "record_result", "signature")

    def __init__(
        self,
        name: str,
        kind: SpanKind,
        attributes: Mapping[str, AttributeValue] | None,
        links: Sequence[Link] | None = None,
        record_args: frozenset[str] | bool = False,
        record_result: bool = False,
        signature: inspect.Signature | None = None,
    ) -> None:
        if not isinstance(kind, SpanKind):
            raise TypeError(f"kind must be an opentelemetry.trace.SpanKind, not {kind!r}")
        self.name = name
        self.kind = kind
        self.attributes = dict(attributes) if attributes else None
        self.links = tuple(links) if links else ()
        self.record_args = record_args
        self.record_result = record_result
        self.signature = signature


# --------------------------------------------------------------------------- the one span path


def _start(spec: _Spec, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Span, Context] | None:
    """Start the span described by ``spec``; ``None`` when no span is needed.

    Returns the span and the context that makes it current; the caller attaches that
    context while the user's code runs and hands the span to :func:`_end`.
    """
    tracer = _state.tracer
    if tracer.__class__ is _NoOpTracer:
        return None
    try:
        parent_context = _get_current()
        parent = parent_context.get(_SPAN_KEY)
        if parent.__class__ is NonRecordingSpan and tracer.drops_child_of(parent):
            return None
        span = tracer.start_span(spec.name, parent_context, spec.kind, spec.attributes, spec.links)
    except Exception as exc:
        report(_INTEGRATION, exc)
        return None
    if spec.record_args and span.is_recording():
        try:
            _record_args(span, spec, args, kwargs)
        except Exception as exc:
            report(_INTEGRATION, exc)
    return span, _set_span_in_context(span, parent_context)


def _end(
    spec: _Spec,
    span: Span,
    token: Token[Context] | None,
    exc: BaseException | None,
    result: Any = None,
) -> None:
    """Make the previous context current again, record the outcome, end the span."""
    if token is not None:
        _detach(token)
    try:
        if exc is not None:
            if isinstance(exc, Exception) and not isinstance(exc, (StopIteration, StopAsyncIteration)):
                record_exception(span, exc)
        elif spec.record_result and span.is_recording():
            span.set_attribute("tracekit.result", _attribute_value(result, _length_limit()))
    except Exception as error:
        report(_INTEGRATION, error)
    try:
        span.end()
    except Exception as error:
        report(_INTEGRATION, error)


# --------------------------------------------------------------------------- recorded values


def _attribute_value(value: Any, limit: int | None) -> AttributeValue:
    """``value`` itself when it is a valid attribute value, else its repr; strings cut to ``limit``.

    Cutting here, rather than leaving it to the SDK, spares a warning from the SDK for
    every call that records a long value.
    """
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)) and _homogeneous(value) and (limit is None or _fits(value, limit)):
        return tuple(value)
    text: str
    if isinstance(value, str):
        text = value
    else:
        try:
            text = repr(value)
        except Exception:
            text = f"<{type(value).__qualname__} (repr() failed)>"
    return text if limit is None else text[:limit]


def _length_limit() -> int | None:
    """The length limit of a recorded value: ``traced_value_length_limit`` or a lower span limit.

    ``None``: no limit. The default keeps one large argument (a 10 MB payload) from making
    a span that no collector accepts.
    """
    tracing = _state.current
    if tracing is None:
        return None
    settings = tracing.settings
    limits = [
        settings.traced_value_length_limit,
        settings.attribute_value_length_limit
        if settings.span_attribute_value_length_limit is None
        else settings.span_attribute_value_length_limit,
    ]
    given = [limit for limit in limits if limit is not None]
    return min(given) if given else None


def _fits(items: Sequence[Any], limit: int) -> bool:
    """Whether a sequence is within ``limit``: in items, and in characters for strings."""
    if len(items) > limit:
        return False
    return not items or type(items[0]) is not str or sum(map(len, items)) <= limit


def _homogeneous(items: Sequence[Any]) -> bool:
    if not items:
        return True
    first = type(items[0])
    return first in (str, bool, int, float) and all(type(item) is first for item in items)


def _record_args(span: Span, spec: _Spec, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    signature = spec.signature
    if signature is None:
        return
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        return  # the call itself fails with the same TypeError; nothing worth recording
    bound.apply_defaults()
    wanted = spec.record_args
    values: dict[str, Any] = {}
    for position, (name, value) in enumerate(bound.arguments.items()):
        parameter = signature.parameters[name]
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            values.update(value)  # each keyword under its own name, each name checked
        elif wanted is not True or position > 0 or name not in ("self", "cls"):
            values[name] = value
    attributes: dict[str, AttributeValue] = {}
    limit = _length_limit()
    for name, value in values.items():
        if (wanted is True or name in wanted) and not SECRET_NAME.search(name):  # type: ignore[operator]
            attributes["tracekit.arg." + name] = _attribute_value(value, limit)
    span.set_attributes(attributes)


# --------------------------------------------------------------------------- wrappers


def _wrap(func: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    """The wrapper for ``func``'s flavour, chosen once."""
    if inspect.isasyncgenfunction(func):
        return _wrap_async_generator(func, spec)
    if inspect.iscoroutinefunction(func):
        return _wrap_coroutine(func, spec)
    if inspect.isgeneratorfunction(func):
        return _wrap_generator(func, spec)
    return _wrap_function(func, spec)


def _wrap_function(func: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = _start(spec, args, kwargs)
        if started is None:
            return func(*args, **kwargs)
        span, context = started
        token = _attach(context)
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            _end(spec, span, token, exc)
            raise
        _end(spec, span, token, None, result)
        return result

    return wrapper


def _wrap_coroutine(func: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = _start(spec, args, kwargs)
        if started is None:
            return await func(*args, **kwargs)
        span, context = started
        token = _attach(context)
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:
            _end(spec, span, token, exc)
            raise
        _end(spec, span, token, None, result)
        return result

    return wrapper


def _wrap_generator(func: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    # The span starts at the first next() (when the generator's body starts running) and
    # ends when the generator is exhausted, closed or fails. Its context is current only
    # while the generator's own code runs, never in the consumer's loop body.
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = _start(spec, args, kwargs)
        if started is None:
            return (yield from func(*args, **kwargs))
        span, context = started
        try:
            generator = func(*args, **kwargs)
            step: Callable[[Any], Any] = generator.send
            value: Any = None
            while True:
                token = _attach(context)
                try:
                    item = step(value)
                finally:
                    _detach(token)
                try:
                    value = yield item
                    step = generator.send
                except GeneratorExit:
                    token = _attach(context)
                    try:
                        generator.close()
                    finally:
                        _detach(token)
                    raise
                except BaseException as exc:
                    step, value = generator.throw, exc
        except StopIteration as stop:
            _end(spec, span, None, None, stop.value)
            return stop.value
        except BaseException as exc:
            _end(spec, span, None, exc)
            raise

    return wrapper


def _wrap_async_generator(func: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    # As for generators; there is no ``yield from`` for async generators, so the same
    # loop also forwards asend()/athrow()/aclose() when no span is made.
    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = _start(spec, args, kwargs)
        span, context = started if started is not None else (None, None)
        try:
            generator = func(*args, **kwargs)
            step: Callable[[Any], Any] = generator.asend
            value: Any = None
            while True:
                token = None if context is None else _attach(context)
                try:
                    item = await step(value)
                finally:
                    if token is not None:
                        _detach(token)
                try:
                    value = yield item
                    step = generator.asend
                except GeneratorExit:
                    token = None if context is None else _attach(context)
                    try:
                        await generator.aclose()
                    finally:
                        if token is not None:
                            _detach(token)
                    raise
                except BaseException as exc:
                    step, value = generator.athrow, exc
        except StopAsyncIteration:
            if span is not None:
                _end(spec, span, None, None)
        except BaseException as exc:
            if span is not None:
                _end(spec, span, None, exc)
            raise

    return wrapper


def _decorate(target: _D, make_spec: Callable[[Callable[..., Any]], _Spec]) -> _D:
    """Wrap a function, or the function inside a staticmethod or classmethod."""
    if isinstance(target, (staticmethod, classmethod)):
        func = target.__func__
        return type(target)(_wrap(func, make_spec(func)))
    if not callable(target):
        raise TypeError(f"tracekit can only trace functions and methods, not {target!r}")
    return _wrap(target, make_spec(target))  # type: ignore[return-value]


def _code_attributes(func: Callable[..., Any]) -> dict[str, AttributeValue]:
    """``code.*`` attributes of ``func``, from the innermost function of a decorator chain."""
    qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
    module = getattr(func, "__module__", None)
    attributes: dict[str, AttributeValue] = {
        "code.function.name": f"{module}.{qualname}" if module else qualname
    }
    code = getattr(inspect.unwrap(func), "__code__", None)
    if code is not None:
        attributes["code.file.path"] = code.co_filename
        attributes["code.line.number"] = code.co_firstlineno
    return attributes


# --------------------------------------------------------------------------- @traced


@overload
def traced(func: _D, /) -> _D: ...


@overload
def traced(
    *,
    name: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Attributes = None,
    record_args: bool | str | Sequence[str] = False,
    record_result: bool = False,
) -> Callable[[_D], _D]: ...


def traced(
    func: Any = None,
    /,
    *,
    name: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Attributes = None,
    record_args: bool | str | Sequence[str] = False,
    record_result: bool = False,
) -> Any:
    """Record a span for every call of the decorated function.

    Use it bare (``@tracekit.traced``) or with options (``@tracekit.traced(name=...)``).
    Plain functions, methods, classmethods, staticmethods, async functions, generators
    and async generators all work; for generators the span covers the whole iteration and
    ends when the generator is exhausted, closed or fails.

    Args:
        name: The span name; by default the function's ``__qualname__``
            (``Checkout.reserve_inventory``).
        kind: The span kind, :class:`opentelemetry.trace.SpanKind`; ``INTERNAL`` by default.
        attributes: Attributes put on every span of this function.
        record_args: ``True`` records every argument as ``tracekit.arg.<name>`` (except a
            leading ``self`` or ``cls``); a name or a tuple of names records only those.
            Values that are not valid attribute values are recorded as their ``repr``.
            Arguments whose names look like secrets (password, token, api_key, auth, ...)
            are never recorded.
        record_result: Record the return value as ``tracekit.result``, in the same way.

    An exception escaping the function is recorded as an ``exception`` event, sets
    ``error.type`` and an ERROR status, and is re-raised unchanged. Cancellation,
    ``GeneratorExit`` and ``StopIteration`` are not errors.

    Until :func:`tracekit.configure` runs, and whenever tracing is disabled or the call is
    part of an unsampled trace, the decorated function runs with next to no overhead.
    """
    if func is not None:
        if isinstance(func, str):
            raise TypeError("tracekit.traced takes the span name as a keyword: @tracekit.traced(name=...)")
        return _decorate(func, _traced_spec(name, kind, attributes, record_args, record_result))
    make_spec = _traced_spec(name, kind, attributes, record_args, record_result)

    def decorator(target: _D) -> _D:
        return _decorate(target, make_spec)

    return decorator


def _traced_spec(
    name: str | None,
    kind: SpanKind,
    attributes: Attributes,
    record_args: bool | str | Sequence[str],
    record_result: bool,
) -> Callable[[Callable[..., Any]], _Spec]:
    wanted: frozenset[str] | bool
    if isinstance(record_args, bool):
        wanted = record_args
    elif isinstance(record_args, str):
        wanted = frozenset((record_args,))
    else:
        wanted = frozenset(record_args)

    def make_spec(func: Callable[..., Any]) -> _Spec:
        signature = None
        if wanted:
            signature = inspect.signature(func)
            if not isinstance(wanted, bool):
                _check_recorded_names(func, signature, wanted)
        return _Spec(
            name or getattr(func, "__qualname__", None) or type(func).__qualname__,
            kind,
            {**_code_attributes(func), **(attributes or {})},
            record_args=wanted,
            record_result=record_result,
            signature=signature,
        )

    return make_spec


def _check_recorded_names(
    func: Callable[..., Any], signature: inspect.Signature, names: frozenset[str]
) -> None:
    """Fail fast on a record_args name the function does not have (a typo records nothing)."""
    secret = sorted(name for name in names if SECRET_NAME.search(name))
    if secret:
        logger.warning(
            "tracekit: record_args of %s names %s; names that look like secrets are never recorded",
            getattr(func, "__qualname__", func),
            ", ".join(secret),
        )
    parameters = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = sorted(names - set(parameters))
    if unknown:
        raise TypeError(
            f"record_args names {', '.join(unknown)}, which {'is' if len(unknown) == 1 else 'are'} not "
            f"a parameter of {getattr(func, '__qualname__', func)!r}"
        )


# --------------------------------------------------------------------------- span()


class SpanBlock:
    """What :func:`span` returns: a context manager (``with``/``async with``) and a decorator.

    Entering it starts the span, makes it current and gives it to the ``as`` target;
    leaving it ends the span, recording an escaping exception as ``@traced`` does. Each
    ``with`` block gets its own span; as a decorator, each call gets one.
    """

    __slots__ = ("_active", "_spec")

    def __init__(self, spec: _Spec) -> None:
        self._spec = spec
        self._active: list[tuple[Span, Token[Context]] | None] = []

    def __enter__(self) -> Span:
        started = _start(self._spec, (), {})
        if started is None:
            self._active.append(None)
            return _current_non_recording_span()
        span, context = started
        self._active.append((span, _attach(context)))
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        active = self._active.pop() if self._active else None
        if active is not None:
            _end(self._spec, active[0], active[1], exc)

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: _D) -> _D:
        """Use the span as a decorator: every call of ``func`` gets a span of its own."""
        spec = self._spec

        def make_spec(target: Callable[..., Any]) -> _Spec:
            return _Spec(
                spec.name,
                spec.kind,
                {**_code_attributes(target), **(spec.attributes or {})},
                spec.links,
            )

        return _decorate(func, make_spec)


def _current_non_recording_span() -> Span:
    """The span a ``with`` block gets when no span is made: non-recording, current context."""
    current = _get_current_span()
    if current.__class__ is NonRecordingSpan:
        return current
    return NonRecordingSpan(current.get_span_context())


def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Attributes = None,
    links: Sequence[Link] | None = None,
    **extra_attributes: AttributeValue,
) -> SpanBlock:
    """A span around a block of code: ``with tracekit.span("reserve_inventory") as s:``.

    Works with ``with`` and ``async with``, gives the span to the ``as`` target (add
    attributes and events to it as the work goes), and can decorate a function too.

    Args:
        name: The span name.
        kind: The span kind, :class:`opentelemetry.trace.SpanKind`; ``INTERNAL`` by default.
        attributes: Attributes set when the span starts (they are visible to the sampler).
        links: :class:`opentelemetry.trace.Link` objects to other spans.
        **extra_attributes: More attributes, for names that are valid Python identifiers:
            ``tracekit.span("charge", currency="EUR")``.

    An exception leaving the block is recorded as an ``exception`` event, sets
    ``error.type`` and an ERROR status, and propagates unchanged. When no span is recorded
    (tracing not configured or disabled, or an unsampled trace), the ``as`` target is a
    non-recording span, on which every method is a harmless no-op.
    """
    merged = {**attributes, **extra_attributes} if attributes else extra_attributes
    return SpanBlock(_Spec(name, kind, merged, links))
