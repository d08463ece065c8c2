"""Workers of uWSGI export their own spans, with no hook or flag of the user's.

uWSGI forks its workers from C, so Python's at-fork handlers, and with them tracekit's child
hooks (``tracekit._fork``), never run in a worker. Under uWSGI (its ``uwsgi`` module is
there) tracekit chains the child hooks into ``uwsgi.post_fork_hook``; ``uwsgidecorators``
replaces that hook with its own chain when imported, so its import chains them again.

``tracekit run uwsgi ...`` configures tracing while the interpreter starts, before uWSGI
has made its module: then an import watcher waits for the module, at the first import after
it exists (the application's, in the master, or in a worker with ``--lazy-apps``).

A fork is safe only if no other thread is half-way through an import at that moment:
``os.fork()`` sees to it, uWSGI does not unless ``py-call-uwsgi-fork-hooks`` is on. A uWSGI
that tracekit sees before it starts gets that option through its environment; one already
running without it has the export thread's imports done on the configuring thread.

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
from tracekit._safety import report

__all__ = ["FORK_HOOKS_OPTION", "FORK_HOOKS_VARIABLE", "THREADS_DISABLED", "follow", "problems"]

#: The uWSGI option that runs Python's fork hooks around uWSGI's forks, and its variable.
FORK_HOOKS_OPTION = "py-call-uwsgi-fork-hooks"
FORK_HOOKS_VARIABLE = "UWSGI_PY_CALL_UWSGI_FORK_HOOKS"

#: What stops export under a uWSGI without Python threads, and the fix.
THREADS_DISABLED = (
    "uWSGI runs without Python threads, so the export thread cannot send spans",
    "start uWSGI with --enable-threads (enable-threads = true in an ini file)",
)


def follow(before_fork: Callable[[], None]) -> None:
    """Hook into uWSGI now if it is running, or as soon as it starts if it is about to.

    uWSGI forks with no Python hook first (as ``os.fork()`` has), so a child forked while the
    export thread imports a module would wait on that import for ever. A uWSGI about to
    start is given ``py-call-uwsgi-fork-hooks`` (through the environment, where it reads
    options as it starts), which runs Python's own hooks around each fork. A uWSGI already
    running without it gets ``before_fork`` called now, to import on this thread what the
    export thread would import.
    """
    uwsgi = sys.modules.get("uwsgi")
    if uwsgi is not None:
        _follow(uwsgi)
        if FORK_HOOKS_OPTION not in getattr(uwsgi, "opt", {}):
            try:
                before_fork()
            except Exception as exc:
                report("uwsgi", exc)
    elif _about_to_start():
        os.environ.setdefault(FORK_HOOKS_VARIABLE, "1")
        if not any(isinstance(finder, _Watch) for finder in sys.meta_path):
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
    return any(os.path.basename(arg) in ("uwsgi", "pyuwsgi") for arg in argv[:3])


class _Watch:
    """A finder that finds nothing: at each import it looks for uWSGI's module, once."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        uwsgi = sys.modules.get("uwsgi")
        if uwsgi is not None and self in sys.meta_path:
            sys.meta_path = [finder for finder in sys.meta_path if finder is not self]
            _fork.run_child_hooks()  # in a worker already (--lazy-apps): nothing ran there yet
            _follow(uwsgi)
        return None

    def __repr__(self) -> str:
        return "<tracekit uWSGI watcher>"
