"""Fork safety: what a forked child runs before its first span, and how it comes to run.

A child made by ``fork()`` (gunicorn and uWSGI workers, Celery's prefork pool,
multiprocessing's ``fork`` start method) inherits configured tracing with one thread, the
one that forked. Whatever another thread of the parent held at that moment (a lock, the
export queue, a half-sent request) is held forever in the child. So tracekit's objects
that own locks, threads or connections register a *child hook* here, and every child hook
obeys one rule: **lock-free and immediate**. It may replace objects and reset fields; it
never acquires a lock, starts a thread, uses a pool, does I/O or imports. Whatever needs
more (the export thread, the exporter's connections) is deferred to the child's first span
or first export, which run on the child's own terms.

Child hooks run once in each new process, whichever way it was forked:

* Python's ``os.fork()`` runs them through ``os.register_at_fork``;
* uWSGI forks its workers from C, where Python's at-fork handlers never run (unless the
  user knows ``--py-call-osafterfork``): ``tracekit._uwsgi`` calls :func:`run_child_hooks`
  from uWSGI's own post-fork hook.

Locks that tracekit's module-level code takes from any thread are made with :func:`lock`
and :func:`rlock`: a child finds them released, whoever held them in the parent.

This module imports only the standard library: everything else in tracekit may use it.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["in_child", "lock", "rlock", "run_child_hooks"]

#: The process the child hooks last ran for (or were armed in).
_pid = os.getpid()
#: Zero-argument callables returning the hook to call, or ``None`` once its owner is gone.
_hooks: list[Callable[[], Callable[[], None] | None]] = []
_locks: weakref.WeakSet[Any] = weakref.WeakSet()


def lock() -> threading.Lock:
    """A ``threading.Lock`` that every forked child finds released."""
    made = threading.Lock()
    _locks.add(made)
    return made


def rlock() -> threading.RLock:
    """A ``threading.RLock`` that every forked child finds released."""
    made = threading.RLock()
    _locks.add(made)
    return made


def in_child(hook: Callable[[], None]) -> None:
    """Run ``hook`` in every child forked from now on, before anything else of tracekit's.

    A bound method is held weakly: once its object is gone the hook is dropped. ``hook``
    must be lock-free and immediate (see the module's docstring).
    """
    if hasattr(hook, "__self__"):
        _hooks.append(weakref.WeakMethod(hook))
    else:
        _hooks.append(lambda: hook)


def run_child_hooks() -> None:
    """Run the child hooks, once per process: a second call in the same process does nothing."""
    global _pid
    pid = os.getpid()
    if pid == _pid:
        return
    _pid = pid
    for made in tuple(_locks):
        made._at_fork_reinit()
    live = []
    for ref in _hooks:
        hook = ref()
        if hook is None:
            continue
        live.append(ref)
        try:
            hook()
        except Exception as exc:  # never stop a fork over tracing
            from tracekit._safety import report  # already imported: no import lock is taken

            report("fork", exc)
    _hooks[:] = live


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=run_child_hooks)
