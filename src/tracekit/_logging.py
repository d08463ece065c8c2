"""tracekit's own logger, and once-only / rate-limited warnings on it."""

from __future__ import annotations

import logging
import time
from typing import Any

from tracekit import _fork

__all__ = ["RateLimitedCounter", "logger", "warn_once"]

logger = logging.getLogger("tracekit")

_warned: set[str] = set()
_warned_lock = _fork.lock()


def warn_once(key: str, message: str, *args: Any, exc_info: BaseException | None = None) -> None:
    """Log ``message`` at WARNING the first time ``key`` is seen in this process."""
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    logger.warning(message, *args, exc_info=exc_info)


def forget_warnings() -> None:
    """Let every once-only warning fire again (for tests and reconfiguration)."""
    with _warned_lock:
        _warned.clear()


class RateLimitedCounter:
    """Counts events and reports the count at most once per ``interval`` seconds.

    Used where logging each event would itself become the problem (dropped spans under
    load): the caller increments cheaply, and one WARNING summarises what happened since
    the previous report.
    """

    def __init__(self, message: str, interval: float = 60.0) -> None:
        self._message = message
        self._interval = interval
        self._lock = _fork.lock()
        self._pending = 0
        self.total = 0
        self._last_report = -interval

    def add(self, count: int = 1) -> None:
        with self._lock:
            self._pending += count
            self.total += count
            now = time.monotonic()
            if now - self._last_report < self._interval:
                return
            pending, self._pending, self._last_report = self._pending, 0, now
        logger.warning(self._message, pending)

    def flush(self) -> None:
        """Report what was counted since the last report, if anything."""
        with self._lock:
            pending, self._pending = self._pending, 0
        if pending:
            logger.warning(self._message, pending)
