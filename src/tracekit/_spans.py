"""What the span helpers of every family share (client, producer, consumer, ``@traced``).

* :func:`record_exception`: an exception escaping the traced operation, recorded once and
  the same way everywhere: an ``exception`` event (``exception.type``, ``exception.message``,
  ``exception.stacktrace``), ``error.type``, status ERROR described by the message.
* :func:`safe_str`: ``str()`` of a value whose ``__str__`` may itself raise.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import Span, Status, StatusCode

from tracekit._semconv import (
    ERROR_TYPE,
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    EXCEPTION_TYPE,
    qualified_name,
)

__all__ = ["record_exception", "safe_str"]


def safe_str(value: object) -> str:
    """``str(value)``, or a placeholder naming its type when ``str()`` raises."""
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__qualname__} (str() failed)>"


def record_exception(
    span: Span,
    exc: BaseException,
    error_type: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> None:
    """Record ``exc``, which escaped the operation of ``span``, on ``span``.

    An ``exception`` event (``exception.type`` is the exception's qualified class name),
    ``error.type`` (``error_type``, by default that class name) and the other ``attributes``,
    and status ERROR described by the exception's message, or by ``error.type`` when the
    message is empty. Nothing at all on a span that is not recording: the traceback is
    not formatted for nothing.
    """
    if not span.is_recording():
        return
    raised = qualified_name(type(exc))
    message = safe_str(exc)
    span.add_event(
        "exception",
        {
            EXCEPTION_TYPE: raised,
            EXCEPTION_MESSAGE: message,
            EXCEPTION_STACKTRACE: "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        },
    )
    if error_type is None:
        error_type = raised
    if attributes:
        span.set_attributes({ERROR_TYPE: error_type, **attributes})
    else:
        span.set_attribute(ERROR_TYPE, error_type)
    span.set_status(Status(StatusCode.ERROR, message or error_type))
