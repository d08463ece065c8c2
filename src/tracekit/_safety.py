"""Keep tracekit's own errors away from the application.

Everything tracekit runs inside a user's call (an integration's wrapper, a hook, a
post-import patch) goes through :func:`guard` or :func:`report`. An exception raised
there is caught, logged once per integration at WARNING on the ``tracekit`` logger, and
the user's call carries on as if tracekit were not there.

The test suite installs a hook with :func:`set_error_hook` so that every guarded error
fails the test that caused it; production code never asks whether it runs under a test.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, cast

from tracekit._logging import warn_once

__all__ = ["guard", "report", "set_error_hook"]

F = TypeVar("F", bound=Callable[..., Any])

ErrorHook = Callable[[str, BaseException], None]

_error_hook: ErrorHook | None = None


def set_error_hook(hook: ErrorHook | None) -> ErrorHook | None:
    """Call ``hook(integration, exception)`` for every guarded error; return the previous hook."""
    global _error_hook
    previous, _error_hook = _error_hook, hook
    return previous


def report(integration: str, exc: BaseException) -> None:
    """Log ``exc`` (once per integration) and pass it to the error hook; never raises."""
    try:
        warn_once(
            f"guard:{integration}",
            "tracekit: internal error in the %s integration (%s: %s); the application's call was "
            "not affected; further errors in this integration are not logged",
            integration,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        hook = _error_hook
        if hook is not None:
            hook(integration, exc)
    except Exception:  # pragma: no cover - the logging system itself failed
        pass


class guard:
    """Context manager and decorator that swallow (and report) tracekit's own exceptions.

    As a context manager the block is abandoned at the failing statement and execution
    continues after the ``with``. As a decorator the function returns ``None`` on failure.
    Only :class:`Exception` is caught: ``KeyboardInterrupt`` and ``SystemExit`` pass.
    """

    __slots__ = ("integration",)

    def __init__(self, integration: str) -> None:
        self.integration = integration

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        report(self.integration, exc)
        return True

    def __call__(self, func: F) -> F:
        integration = self.integration

        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                report(integration, exc)
                return None

        return cast(F, guarded)
