"""Workers of uWSGI export their own spans, with no hook or flag of the user's.

uWSGI forks its workers from C, so Python's at-fork handlers, and with them tracekit's child
hooks (``tracekit._fork``), never run in a worker. Under uWSGI (its ``uwsgi`` module is
there) tracekit chains the child hooks into ``uwsgi.post_fork_hook``; ``uwsgidecorators``
replaces that hook with its own chain when imported, so its import chains them again.

``tracekit run uwsgi ...`` configures tracing while the interpreter starts, before uWSGI
has made its module: then an import watcher waits for the module, at the first import after
it exists (the application's, in the master, or in a worker with ``--lazy-apps``).

Exporting needs a thread: a uWSGI started without Python threads (the C server's default
without ``--enable-threads``) gets one WARNING naming the option, which ``tracekit
doctor`` repeats.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from typing import Any

from tracekit import _fork
from tracekit._importhook import when_imported
from tracekit._logging import warn_once

__all__ = ["THREADS_DISABLED", "follow", "problems"]

#: What stops export under a uWSGI without Python threads, and the fix.
THREADS_DISABLED = (
    "uWSGI runs without Python threads, so the export thread cannot send spans",
    "start uWSGI with --enable-threads (enable-threads = true in an ini file)",
)


def follow() -> None:
    """Hook into uWSGI now if it is running, or as soon as it starts if it is about to."""
    uwsgi = sys.modules.get("uwsgi")
    if uwsgi is not None:
        _follow(uwsgi)
    elif _about_to_start() and not any(isinstance(finder, _Watch) for finder in sys.meta_path):
        # A new list: an import in progress keeps iterating the one it has.
        sys.meta_path = [_Watch(), *sys.meta_path]


def problems() -> list[tuple[str, str]]:
    """What stops spans from leaving this uWSGI process, each with its fix (none outside uWSGI)."""
    uwsgi = sys.modules.get("uwsgi")
    if uwsgi is not None and not getattr(uwsgi, "has_threads", True):
        return [THREADS_DISABLED]
    return []


def _follow(uwsgi: Any) -> None:
    previous = getattr(uwsgi, "post_fork_hook", None)
    if getattr(previous, "__wrapped__", None) is not _fork.run_child_hooks:
        uwsgi.post_fork_hook = _chained(previous)
    if "uwsgidecorators" not in sys.modules:
        when_imported("uwsgidecorators", lambda _: _follow(uwsgi))
    for problem, fix in problems():
        warn_once(f"uwsgi: {problem}", "tracekit: %s; %s", problem, fix)


def _chained(previous: Callable[[], object] | None) -> Callable[[], None]:
    def post_fork_hook() -> None:
        _fork.run_child_hooks()
        if previous is not None:
            previous()

    post_fork_hook.__wrapped__ = _fork.run_child_hooks  # type: ignore[attr-defined]
    return post_fork_hook


def _about_to_start() -> bool:
    """Whether this interpreter runs the uWSGI server (started as ``uwsgi`` or ``pyuwsgi``)."""
    argv: Sequence[str] = getattr(sys, "orig_argv", None) or getattr(sys, "argv", None) or ()
    return any("uwsgi" in os.path.basename(arg) for arg in argv[:3])


class _Watch:
    """A finder that finds nothing: at each import it looks for uWSGI's module, once."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        uwsgi = sys.modules.get("uwsgi")
        if uwsgi is not None and self in sys.meta_path:
            sys.meta_path = [finder for finder in sys.meta_path if finder is not self]
            _follow(uwsgi)
            _fork.run_child_hooks()  # in a worker already (--lazy-apps): nothing ran there yet
        return None

    def __repr__(self) -> str:
        return "<tracekit uWSGI watcher>"
