"""threading: work handed to another thread runs in the context of the code that handed it over.

``Thread.start`` records the starting thread's OpenTelemetry context and the new thread
attaches it before ``run()`` (whatever subclass overrides ``run``);
``ThreadPoolExecutor.submit`` does the same for each submitted call. Spans made there
keep their parent. asyncio tasks need nothing: they copy ``contextvars`` themselves.

Every process imports ``threading``, so this integration is applied at start-up: its
wrappers are plain functions (:class:`~tracekit._patch.Plain`), which do not import wrapt.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context

from tracekit._patch import Patches, Plain

__all__ = ["patch", "patches", "unpatch"]

_ATTRIBUTE = "_tracekit_context"


def _start(wrapped: Any, thread: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # A pool's worker thread outlives the submit() that happened to start it: each work item
    # carries its own context (see _submit), the worker itself starts with none.
    if getattr(getattr(thread, "_target", None), "__module__", None) != "concurrent.futures.thread":
        vars(thread)[_ATTRIBUTE] = context.get_current()
    return wrapped(*args, **kwargs)


def _bootstrap_inner(wrapped: Any, thread: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    parent = vars(thread).pop(_ATTRIBUTE, None)
    if parent is None:
        return wrapped(*args, **kwargs)
    token = context.attach(parent)
    try:
        return wrapped(*args, **kwargs)
    finally:
        context.detach(token)


def _submit(wrapped: Any, executor: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    fn, *rest = args
    parent = context.get_current()

    def in_context(*call_args: Any, **call_kwargs: Any) -> Any:
        token = context.attach(parent)
        try:
            return fn(*call_args, **call_kwargs)
        finally:
            context.detach(token)

    return wrapped(in_context, *rest, **kwargs)


patches = Patches(
    "threading",
    {
        "threading": [("Thread.start", Plain(_start)), ("Thread._bootstrap_inner", Plain(_bootstrap_inner))],
        "concurrent.futures.thread": [("ThreadPoolExecutor.submit", Plain(_submit))],
    },
)
patch = patches.apply
unpatch = patches.revert
