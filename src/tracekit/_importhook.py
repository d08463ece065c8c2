"""Post-import hooks: call a function right after a module is imported.

:func:`when_imported` calls the hook at once when the module is already imported.
Otherwise it installs (once) a finder at the front of ``sys.meta_path``. For a watched
name the finder asks the other finders for the module's spec and hands the import system
that spec with its loader wrapped: the module executes as it would have, with its own
loader set on it, and the hooks waiting for it run right after, while the import lock
still holds (another thread importing the same module waits for them, then sees the
patched module). A hook runs once; the finder takes itself off ``sys.meta_path`` when no
hook is left waiting. A hook's exception is reported through :mod:`tracekit._safety` and
never reaches the importing code; a failing import leaves the hooks waiting for the next
attempt.

This module imports nothing beyond the standard library's already loaded core.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

from tracekit import _fork
from tracekit._safety import report

__all__ = ["Hook", "pending", "when_imported"]

Hook = Callable[[ModuleType], None]

_lock = _fork.rlock()
#: module name -> hooks still waiting for it.
_hooks: dict[str, list[Hook]] = {}
#: Names whose module is executing under a wrapped loader: a hook added meanwhile waits.
_executing: set[str] = set()


def when_imported(name: str, hook: Hook) -> None:
    """Call ``hook(module)`` now if ``name`` is imported, else once, right after its import."""
    with _lock:
        _hooks.setdefault(name, []).append(hook)
        module = sys.modules.get(name)
        if module is None or name in _executing:
            if _finder not in sys.meta_path:
                sys.meta_path.insert(0, _finder)
            return
    _fire(name, module)  # with any hook an import missed (one that did not go through the finder)


def pending() -> dict[str, int]:
    """``name -> number of hooks`` still waiting, for diagnostics and tests."""
    with _lock:
        return {name: len(hooks) for name, hooks in _hooks.items()}


def _call(name: str, hook: Hook, module: ModuleType) -> None:
    try:
        hook(module)
    except Exception as exc:
        report(name, exc)


def _fire(name: str, module: ModuleType) -> None:
    with _lock:
        _executing.discard(name)
        hooks = _hooks.pop(name, [])
        if not _hooks and _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
    replaced = sys.modules.get(name)  # a module may put another object in its place
    if replaced is not None:
        module = replaced
    for hook in hooks:
        _call(name, hook, module)


class _Finder:
    """Finds nothing itself: wraps the loader of a watched module found by the other finders."""

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name not in _hooks:  # unlocked read: the common case, any other module, stays cheap
            return None
        for finder in list(sys.meta_path):
            find_spec = getattr(finder, "find_spec", None)
            if finder is self or find_spec is None:
                continue
            spec: ModuleSpec | None = find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None:  # a namespace package on an old Python: nothing executes
            return spec
        wrapped: Any = spec  # the import system takes any object with the loader's methods
        if hasattr(loader, "exec_module"):
            wrapped.loader = _Loader(spec, loader)
        elif hasattr(loader, "load_module"):
            wrapped.loader = _LegacyLoader(spec, loader)
        return spec

    def __repr__(self) -> str:
        return "<tracekit post-import hook finder>"


class _Wrapped:
    """A found spec's own loader, delegated to; the module only ever sees that loader."""

    def __init__(self, spec: ModuleSpec, loader: Any) -> None:
        self.spec: Any = spec
        self.loader = loader

    def __getattr__(self, attribute: str) -> Any:  # get_code, get_source, is_package, ...
        if attribute in ("spec", "loader"):  # not set yet: no recursion through __getattr__
            raise AttributeError(attribute)
        return getattr(self.loader, attribute)

    def _run(self, name: str, load: Callable[[], ModuleType]) -> ModuleType:
        if self.spec.loader is self:
            self.spec.loader = self.loader
        with _lock:
            _executing.add(name)
        try:
            module = load()
        except BaseException:
            with _lock:
                _executing.discard(name)
            raise
        _fire(name, module)
        return module


class _Loader(_Wrapped):
    """For a loader with ``exec_module``: the module executes, then the hooks run."""

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        create = getattr(self.loader, "create_module", None)
        return None if create is None else create(spec)

    def exec_module(self, module: ModuleType) -> None:
        if getattr(module, "__loader__", None) is self:
            module.__loader__ = self.loader

        def load() -> ModuleType:
            self.loader.exec_module(module)
            return module

        self._run(self.spec.name, load)


class _LegacyLoader(_Wrapped):
    """For a loader with ``load_module`` only (no ``exec_module``): the import system calls this."""

    def load_module(self, fullname: str) -> ModuleType:
        return self._run(fullname, lambda: self.loader.load_module(fullname))


_finder = _Finder()
