"""Declared patches, applied and reverted.

An integration module declares what it wraps as data::

    patches = Patches("httpx", {
        "httpx": [("Client.send", _scope), ("Client._send_single_request", _send)],
    })
    patch, unpatch = patches.apply, patches.revert

A wrapper has wrapt's signature, ``wrapper(wrapped, instance, args, kwargs)``.
``apply(module)`` wraps each target with a :class:`wrapt.FunctionWrapper` (wrapt is
imported then, not before) and records the exact originals in a marker attribute on the
module: the marker makes a second ``apply`` a no-op, and ``revert(module)`` puts every
original back (or removes the attribute when the target was inherited) and deletes the
marker. Because the marker lives on the module object, a re-imported module starts
unpatched, as it should.

A target declared with :class:`Plain` is wrapped by a plain Python function instead of
wrapt. Synchronous functions and methods use it: a call costs about half as much, and the
standard library modules every process imports (``threading``) are patched without
importing wrapt at start-up. Coroutine functions stay with wrapt, which keeps
``inspect.iscoroutinefunction`` true. Everything else (marker, revert, the checks below)
is the same for both kinds of wrapper.

A target declared with :class:`Replace` instead of a wrapper function is rebound to a
replacement made from the original (a subclass of a C extension type whose methods cannot
be wrapped in place); ``revert`` rebinds the original the same way.

A path ending in ``?`` is optional: a library version without that attribute is patched
without it (a hook that only some versions of a library offer).

``extend(module, owner, attribute, wrapper)`` wraps one more target met while the
application runs (a subclass overriding a patched method, say), recorded with ``module``'s
patches so that ``revert`` restores it too.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import FunctionType, MethodType, ModuleType
from typing import TYPE_CHECKING, Any

from tracekit._importhook import when_imported
from tracekit._logging import logger

if TYPE_CHECKING:
    from tracekit._wrapt import TracekitWrapper

__all__ = [
    "Patches",
    "Plain",
    "Replace",
    "TracekitWrapper",
    "Wrapper",
    "is_patch",
    "original_of",
    "when_imported",
]

#: The wrapt wrapper signature: ``wrapper(wrapped, instance, args, kwargs)``.
Wrapper = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]


def __getattr__(name: str) -> Any:
    if name == "TracekitWrapper":  # imports wrapt: only when asked for
        from tracekit._wrapt import TracekitWrapper

        return TracekitWrapper
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Plain:
    """A declared target wrapped by a plain Python function rather than by wrapt.

    ``wrapper`` has the same signature; ``instance`` is bound as wrapt binds it. For a
    synchronous function of a module or of a Python class (not staticmethods,
    classmethods or coroutine functions).
    """

    __slots__ = ("wrapper",)

    def __init__(self, wrapper: Wrapper) -> None:
        self.wrapper = wrapper


class Replace:
    """A declared target that is replaced outright rather than wrapped.

    For classes whose methods cannot be wrapped in place (C extension types such as
    confluent-kafka's ``Producer``): ``make(original)`` returns the replacement, usually a
    subclass, which ``apply`` rebinds in the module and marks with ``__tracekit_original__``.
    """

    __slots__ = ("make",)

    def __init__(self, make: Callable[[Any], Any]) -> None:
        self.make = make


_ORIGINAL = "__tracekit_original__"
#: Held while a target met at run time is wrapped (:meth:`Patches.extend`).
_EXTENDING = threading.Lock()


def _is_wrapt_patch(value: Any) -> bool:
    made = sys.modules.get("tracekit._wrapt")  # none made before it was imported
    return made is not None and isinstance(value, made.TracekitWrapper)


def is_patch(value: Any) -> bool:
    """Whether ``value`` is something tracekit installed (either kind of wrapper, or a replacement)."""
    return _is_wrapt_patch(value) or _ORIGINAL in getattr(value, "__dict__", {})


def original_of(value: Any) -> Any:
    """What the wrapper or replacement ``value`` stands in for."""
    if _is_wrapt_patch(value):
        return value.__wrapped__
    return vars(value)[_ORIGINAL]


def _plain(parent: Any, original: Any, wrapper: Wrapper) -> Any:
    """``original`` wrapped by a function calling ``wrapper(wrapped, instance, args, kwargs)``."""
    if isinstance(parent, ModuleType):

        def function(*args: Any, **kwargs: Any) -> Any:
            return wrapper(original, None, args, kwargs)

        patched: Any = function
    elif isinstance(parent, type) and isinstance(original, FunctionType):
        # A function in a class binds like the original: ``instance`` is the object, and
        # ``wrapped`` the original bound to it, whether called on the object or the class.
        def method(self: Any, /, *args: Any, **kwargs: Any) -> Any:
            return wrapper(MethodType(original, self), self, args, kwargs)

        patched = method
    else:
        raise TypeError(f"Plain wraps functions of modules and Python classes, not {original!r}")
    functools.update_wrapper(patched, original)
    setattr(patched, _ORIGINAL, original)
    return patched


@dataclass(frozen=True)
class _Applied:
    parent: Any
    attribute: str
    own: bool
    original: Any
    wrapper: Any


def _resolve(module: ModuleType, path: str) -> tuple[Any, str]:
    *owners, attribute = path.split(".")
    parent: Any = module
    for name in owners:
        parent = getattr(parent, name)
    return parent, attribute


def _resolve_declared(module: ModuleType, path: str) -> tuple[Any, str] | None:
    """:func:`_resolve`, or ``None`` for an optional target (``path?``) that ``module`` lacks."""
    if not path.endswith("?"):
        return _resolve(module, path)
    try:
        parent, attribute = _resolve(module, path[:-1])
    except AttributeError:
        return None
    return (parent, attribute) if hasattr(parent, attribute) else None


class Patches:
    """The wrappers of one integration, per trigger module, with apply and revert."""

    def __init__(
        self, integration: str, declared: Mapping[str, Sequence[tuple[str, Wrapper | Plain | Replace]]]
    ) -> None:
        self.integration = integration
        self.declared = {module: tuple(items) for module, items in declared.items()}
        self.marker = f"__tracekit_patched_{integration}__"

    def targets(self, module: ModuleType) -> Iterable[tuple[Any, str]]:
        """``(owner, attribute)`` of every declared target in ``module``."""
        for path, _ in self.declared.get(module.__name__, ()):
            found = _resolve_declared(module, path)
            if found is not None:
                yield found

    def is_applied(self, module: ModuleType) -> bool:
        """Whether this integration's wrappers are currently installed in ``module``."""
        return self.marker in vars(module)

    def apply(self, module: ModuleType) -> bool:
        """Wrap every target declared for ``module``; ``False`` if it was already patched."""
        if self.is_applied(module):
            return False
        applied: list[_Applied] = []
        try:
            for path, wrapper in self.declared.get(module.__name__, ()):
                found = _resolve_declared(module, path)
                if found is None:
                    continue
                parent, attribute = found
                own = attribute in vars(parent)
                original = vars(parent)[attribute] if own else getattr(parent, attribute)
                if isinstance(wrapper, Replace):
                    replacement = wrapper.make(original)
                    setattr(replacement, _ORIGINAL, original)
                elif isinstance(wrapper, Plain):
                    replacement = _plain(parent, original, wrapper.wrapper)
                else:
                    from tracekit._wrapt import TracekitWrapper

                    replacement = TracekitWrapper(original, wrapper)
                setattr(parent, attribute, replacement)
                applied.append(_Applied(parent, attribute, own, original, replacement))
        except BaseException:
            _restore(applied)
            raise
        setattr(module, self.marker, tuple(applied))
        return True

    def extend(self, module: ModuleType, parent: Any, attribute: str, wrapper: Wrapper | Plain) -> bool:
        """Wrap ``parent.attribute`` too, while ``module`` is patched; ``False`` if it was not
        patched or the attribute is already a patch (another thread got there first)."""
        with _EXTENDING:
            applied = vars(module).get(self.marker)
            own = attribute in vars(parent)
            original = vars(parent)[attribute] if own else getattr(parent, attribute)
            if applied is None or is_patch(original):
                return False
            if isinstance(wrapper, Plain):
                replacement = _plain(parent, original, wrapper.wrapper)
            else:
                from tracekit._wrapt import TracekitWrapper

                replacement = TracekitWrapper(original, wrapper)
            setattr(parent, attribute, replacement)
            setattr(module, self.marker, (*applied, _Applied(parent, attribute, own, original, replacement)))
            return True

    def revert(self, module: ModuleType) -> bool:
        """Restore the exact originals in ``module``; ``False`` if it was not patched."""
        applied = vars(module).get(self.marker)
        if applied is None:
            return False
        _restore(applied)
        delattr(module, self.marker)
        return True


def _restore(applied: Sequence[_Applied]) -> None:
    for item in reversed(applied):
        current = vars(item.parent).get(item.attribute)
        if current is not item.wrapper:
            logger.warning(
                "tracekit: %s.%s was replaced after tracekit patched it; leaving the replacement in place",
                getattr(item.parent, "__qualname__", item.parent),
                item.attribute,
            )
            continue
        if item.own:
            setattr(item.parent, item.attribute, item.original)
        else:
            delattr(item.parent, item.attribute)
