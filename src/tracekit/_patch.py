"""Declared patches, applied and reverted with wrapt.

An integration module declares what it wraps as data::

    patches = Patches("httpx", {
        "httpx": [("Client.send", _scope), ("Client._send_single_request", _send)],
    })
    patch, unpatch = patches.apply, patches.revert

``apply(module)`` wraps each target with a :class:`wrapt.FunctionWrapper` and records the
exact originals in a marker attribute on the module: the marker makes a second ``apply``
a no-op, and ``revert(module)`` puts every original back (or removes the attribute when
the target was inherited) and deletes the marker. Because the marker lives on the module
object, a re-imported module starts unpatched, as it should.

A target declared with :class:`Replace` instead of a wrapper function is rebound to a
replacement made from the original (a subclass of a C extension type whose methods cannot
be wrapped in place); ``revert`` rebinds the original the same way.

A path ending in ``?`` is optional: a library version without that attribute is patched
without it (a hook that only some versions of a library offer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import wrapt

from tracekit._logging import logger

__all__ = ["Patches", "Replace", "TracekitWrapper", "Wrapper", "is_patch", "original_of", "when_imported"]

#: The wrapt wrapper signature: ``wrapper(wrapped, instance, args, kwargs)``.
Wrapper = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]


class TracekitWrapper(wrapt.FunctionWrapper):  # type: ignore[type-arg]
    """The type of every wrapper tracekit installs, so tests can find any left behind."""


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


def is_patch(value: Any) -> bool:
    """Whether ``value`` is something tracekit installed (a wrapper or a replacement)."""
    return isinstance(value, TracekitWrapper) or _ORIGINAL in getattr(value, "__dict__", {})


def original_of(value: Any) -> Any:
    """What the wrapper or replacement ``value`` stands in for."""
    if isinstance(value, TracekitWrapper):
        return value.__wrapped__
    return vars(value)[_ORIGINAL]


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
        self, integration: str, declared: Mapping[str, Sequence[tuple[str, Wrapper | Replace]]]
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
                else:
                    replacement = TracekitWrapper(original, wrapper)
                setattr(parent, attribute, replacement)
                applied.append(_Applied(parent, attribute, own, original, replacement))
        except BaseException:
            _restore(applied)
            raise
        setattr(module, self.marker, tuple(applied))
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


def when_imported(module_name: str, hook: Callable[[ModuleType], None]) -> None:
    """Call ``hook(module)`` now if ``module_name`` is imported, else right after its import.

    wrapt's post-import hooks fire once; the caller keeps track of pending registrations.
    Nothing is imported here.
    """
    wrapt.register_post_import_hook(hook, module_name)
