"""Fork safety: what a forked child runs before its first span, and how it comes to run.

A child made by ``fork()`` (gunicorn and uWSGI workers, Celery's prefork pool,
multiprocessing's ``fork`` start method) inherits configured tracing with one thread, the
one that forked. Whatever another thread of the parent held at that moment (a lock, the
export queue, a half-sent request) is held forever in the child. So tracekit's objects
that own locks, threads or connections register a *child hook* here, and every child hook
obeys one rule: **lock-free and immediate**. It may replace objects and reset fields; it
never acquires a lock, starts a thread, uses a pool, does I/O or imports. Whatever needs
more is deferred to the child's first span (:func:`before_first_span`: the processor's
counters, the resource's ``process.pid``, the export thread) or first export (the
exporter's connections), which run on the child's own terms; a child that never traces
pays for none of it.

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
from typing import Any, TypeVar

__all__ = ["before_first_span", "first_span", "in_child", "lock", "rlock", "run_child_hooks"]

Owner = TypeVar("Owner")
_Hook = tuple["weakref.ref[Any]", Callable[[Any], None]]

#: Run right after a fork; the process they last ran for.
_immediate: list[_Hook] = []
_pid = os.getpid()
#: Run as a forked child queues its first span; the process they last ran for.
_deferred: list[_Hook] = []
_settled_pid = os.getpid()
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


_settling = lock()


def in_child(owner: Owner, hook: Callable[[Owner], None]) -> None:
    """Call ``hook(owner)`` in every child forked from now on, right after the fork.

    Held as long as ``owner`` lives. Lock-free and immediate (see the module's docstring),
    and as small as it can be: it runs in every child, traced or not.
    """
    _immediate.append((weakref.ref(owner), hook))


def before_first_span(owner: Owner, hook: Callable[[Owner], None]) -> None:
    """Call ``hook(owner)`` in every child forked from now on, as it queues its first span.

    For the work a child needs before it exports but that need not slow every fork down.
    """
    _deferred.append((weakref.ref(owner), hook))


def run_child_hooks() -> None:
    """Run the immediate child hooks, once per process: again in the same process, nothing."""
    global _pid
    pid = os.getpid()
    if pid == _pid:
        return
    _pid = pid
    for made in tuple(_locks):
        made._at_fork_reinit()
    _run(_immediate)


def first_span() -> None:
    """In a forked child, run the deferred hooks, once; the processor calls this with a
    process's first span. Never called with one of tracekit's locks held."""
    global _settled_pid
    if os.getpid() == _settled_pid:
        return
    with _settling:
        if os.getpid() != _settled_pid:
            _run(_deferred)
            _settled_pid = os.getpid()


def _run(hooks: list[_Hook]) -> None:
    live = []
    for ref, hook in hooks:
        owner = ref()
        if owner is None:
            continue
        live.append((ref, hook))
        try:
            hook(owner)
        except Exception as exc:  # never stop a fork over tracing
            from tracekit._safety import report  # already imported: no import lock is taken

            report("fork", exc)
    hooks[:] = live


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=run_child_hooks)
