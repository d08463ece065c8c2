"""An event whose ``set`` can be called from a signal handler without risking a deadlock."""

from __future__ import annotations

import threading
import time

__all__ = ["Event"]


class Event:
    """``threading.Event``'s ``set``, ``clear``, ``wait`` and ``is_set``, and a ``set`` that never blocks.

    A signal handler runs on the main thread between two of its instructions, possibly
    while that thread holds this object's lock inside ``set()``: the handler then must not
    wait for it (a ``threading.Event`` would hang the process there for ever).
    :meth:`set_without_blocking` gives up instead and says so; whoever waits on the event
    then wakes at its own time limit.
    """

    __slots__ = ("_condition", "_flag")

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._flag = False

    def set(self) -> None:
        with self._condition:
            self._flag = True
            self._condition.notify_all()

    def set_from_signal_handler(self, patience: float = 0.05) -> bool:
        """:meth:`set_without_blocking`, tried again for up to ``patience`` seconds.

        Another thread holds the lock only for an instant; the interrupted thread, for as
        long as the handler runs: after ``patience`` the handler goes on without it.
        """
        deadline = time.monotonic() + patience
        while not self.set_without_blocking():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.001)
        return True

    def set_without_blocking(self) -> bool:
        if not self._condition.acquire(blocking=False):
            return False
        try:
            self._flag = True
            self._condition.notify_all()
        finally:
            self._condition.release()
        return True

    def clear(self) -> None:
        with self._condition:
            self._flag = False

    def is_set(self) -> bool:
        return self._flag

    def wait(self, timeout: float) -> bool:
        with self._condition:
            if not self._flag:
                self._condition.wait(timeout)
            return self._flag
