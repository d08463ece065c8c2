"""The wrapt wrapper tracekit installs in libraries; imported when the first one is made."""

from __future__ import annotations

import wrapt

__all__ = ["TracekitWrapper"]


class TracekitWrapper(wrapt.FunctionWrapper):  # type: ignore[type-arg]
    """The type of every wrapt wrapper tracekit installs, so tests can find any left behind."""
