"""Post-import hooks (tracekit._importhook) and plain wrappers (tracekit._patch.Plain)."""

from __future__ import annotations

import importlib
import importlib.machinery
import subprocess
import sys
import textwrap
import threading
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tracekit import _importhook
from tracekit._importhook import when_imported
from tracekit._patch import Patches, Plain, is_patch, original_of


@pytest.fixture
def modules(tmp_path: Path) -> Iterator[Path]:
    """A directory on ``sys.path`` for test modules; they and their hooks are forgotten after.

    Hooks left waiting by earlier tests (for libraries this process never imports) are set
    aside meanwhile, so that each test sees only its own, then put back.
    """
    sys.path.insert(0, str(tmp_path))
    before = set(sys.modules)
    with _importhook._lock:
        waiting = dict(_importhook._hooks)
        _importhook._hooks.clear()
        if _importhook._finder in sys.meta_path:
            sys.meta_path.remove(_importhook._finder)
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in set(sys.modules) - before:
        if name.startswith("hooked_"):
            del sys.modules[name]
    with _importhook._lock:
        for name in [name for name in _importhook._hooks if name.startswith("hooked_")]:
            del _importhook._hooks[name]
        _importhook._hooks.update(waiting)
        watching = _importhook._finder in sys.meta_path
        if _importhook._hooks and not watching:
            sys.meta_path.insert(0, _importhook._finder)
        elif not _importhook._hooks and watching:
            sys.meta_path.remove(_importhook._finder)


def write(directory: Path, name: str, body: str) -> None:
    path = directory.joinpath(*name.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    importlib.invalidate_caches()


def test_a_hook_runs_once_right_after_the_import(modules: Path) -> None:
    write(modules, "hooked_a", "VALUE = 1\n")
    seen: list[Any] = []
    when_imported("hooked_a", lambda module: seen.append((module, module.VALUE)))
    assert seen == []
    assert _importhook._finder in sys.meta_path
    import hooked_a  # type: ignore[import-not-found]

    assert seen == [(hooked_a, 1)]
    # The module sees its own loader, not the finder's wrapper.
    assert type(hooked_a.__loader__) is importlib.machinery.SourceFileLoader
    assert hooked_a.__spec__.loader is hooked_a.__loader__
    assert _importhook._finder not in sys.meta_path, "nothing is watched any more"
    importlib.reload(hooked_a)
    assert len(seen) == 1, "a reload does not call a hook again"
    assert type(hooked_a.__loader__) is importlib.machinery.SourceFileLoader


def test_an_imported_module_calls_the_hook_at_once(modules: Path) -> None:
    write(modules, "hooked_b", "")
    import hooked_b  # type: ignore[import-not-found]

    seen: list[Any] = []
    when_imported("hooked_b", seen.append)
    assert seen == [hooked_b]
    assert _importhook.pending() == {} or "hooked_b" not in _importhook.pending()


def test_a_re_imported_module_calls_a_new_hook_with_the_new_module(modules: Path) -> None:
    write(modules, "hooked_c", "")
    seen: list[Any] = []
    when_imported("hooked_c", seen.append)
    first = importlib.import_module("hooked_c")
    del sys.modules["hooked_c"]
    when_imported("hooked_c", seen.append)
    second = importlib.import_module("hooked_c")
    assert seen == [first, second]
    assert first is not second


def test_a_raising_hook_is_reported_and_the_import_and_other_hooks_go_on(
    modules: Path, guarded_errors: list[tuple[str, BaseException]]
) -> None:
    write(modules, "hooked_d", "VALUE = 1\n")

    def broken(module: types.ModuleType) -> None:
        raise RuntimeError("hook failed")

    seen: list[Any] = []
    when_imported("hooked_d", broken)
    when_imported("hooked_d", seen.append)
    import hooked_d  # type: ignore[import-not-found]

    assert hooked_d.VALUE == 1
    assert seen == [hooked_d]
    assert [(name, str(exc)) for name, exc in guarded_errors] == [("hooked_d", "hook failed")]
    guarded_errors.clear()


def test_a_failed_import_keeps_the_hook_for_the_next_attempt(modules: Path) -> None:
    write(modules, "hooked_e", "raise ValueError('not yet')\n")
    seen: list[Any] = []
    when_imported("hooked_e", seen.append)
    with pytest.raises(ValueError, match="not yet"):
        importlib.import_module("hooked_e")
    assert seen == []
    assert _importhook.pending()["hooked_e"] == 1
    assert "hooked_e" not in _importhook._executing
    write(modules, "hooked_e", "VALUE = 2\n")
    module = importlib.import_module("hooked_e")
    assert seen == [module]


def test_submodules_and_a_hook_registered_while_the_module_executes(modules: Path) -> None:
    write(modules, "hooked_pkg.__init__", "")
    write(
        modules,
        "hooked_pkg.sub",
        """
        from tracekit._importhook import when_imported
        import hooked_pkg
        hooked_pkg.order.append("body")
        when_imported(__name__, lambda module: hooked_pkg.order.append(("late", module.__name__)))
        hooked_pkg.order.append("end of body")
        """,
    )
    import hooked_pkg  # type: ignore[import-not-found]

    hooked_pkg.order = []
    when_imported("hooked_pkg.sub", lambda module: hooked_pkg.order.append(("early", module.__name__)))
    importlib.import_module("hooked_pkg.sub")
    assert hooked_pkg.order == [
        "body",
        "end of body",
        ("early", "hooked_pkg.sub"),
        ("late", "hooked_pkg.sub"),
    ]


def test_threads_importing_together_all_see_the_hooked_module(modules: Path) -> None:
    write(modules, "hooked_f", "import time\ntime.sleep(0.2)\n")
    calls: list[int] = []

    def hook(module: types.ModuleType) -> None:
        calls.append(1)
        module.patched = True  # type: ignore[attr-defined]

    when_imported("hooked_f", hook)
    barrier = threading.Barrier(8)
    seen: list[bool] = []

    def importer() -> None:
        barrier.wait()
        module = importlib.import_module("hooked_f")
        seen.append(getattr(module, "patched", False))

    threads = [threading.Thread(target=importer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert calls == [1]
    assert seen == [True] * 8


def test_threads_registering_together_call_each_hook_once(modules: Path) -> None:
    write(modules, "hooked_g", "")
    calls: list[int] = []
    barrier = threading.Barrier(8)

    def register(number: int) -> None:
        barrier.wait()
        when_imported("hooked_g", lambda module: calls.append(number))
        if number % 2:
            importlib.import_module("hooked_g")

    threads = [threading.Thread(target=register, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    importlib.import_module("hooked_g")
    assert sorted(calls) == list(range(8))
    assert "hooked_g" not in _importhook.pending()


class _LegacyOnlyLoader:
    """A loader from before exec_module: ``load_module`` only."""

    def load_module(self, fullname: str) -> types.ModuleType:
        module = types.ModuleType(fullname)
        module.LEGACY = True  # type: ignore[attr-defined]
        sys.modules[fullname] = module
        return module


class _LegacyFinder:
    def find_spec(self, name: str, path: object = None, target: object = None) -> Any:
        if name == "hooked_legacy":
            return importlib.machinery.ModuleSpec(name, _LegacyOnlyLoader())
        return None


def test_a_loader_without_exec_module_still_calls_the_hook(modules: Path) -> None:
    finder = _LegacyFinder()
    sys.meta_path.append(finder)
    try:
        seen: list[Any] = []
        when_imported("hooked_legacy", seen.append)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ImportWarning)
            module = importlib.import_module("hooked_legacy")
    finally:
        sys.meta_path.remove(finder)
    assert module.LEGACY is True
    assert seen == [module]


def test_a_module_that_replaces_itself_hands_the_replacement_to_the_hook(modules: Path) -> None:
    write(
        modules,
        "hooked_h",
        "import sys, types\nsys.modules[__name__] = types.SimpleNamespace(REPLACED=True)\n",
    )
    seen: list[Any] = []
    when_imported("hooked_h", seen.append)
    importlib.import_module("hooked_h")
    assert seen == [sys.modules["hooked_h"]]
    assert seen[0].REPLACED is True


def test_a_standard_library_submodule_imported_lazily() -> None:
    script = """
        import sys
        from tracekit._importhook import when_imported
        assert "concurrent.futures.thread" not in sys.modules
        seen = []
        when_imported("concurrent.futures.thread", lambda module: seen.append(module.__name__))
        from concurrent.futures import ThreadPoolExecutor
        assert seen == ["concurrent.futures.thread"], seen
        assert not any(type(f).__module__ == "tracekit._importhook" for f in sys.meta_path)
        print("ok")
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize("propagators", ["", "b3,tracecontext"])
def test_configure_imports_neither_wrapt_nor_asyncio_nor_importlib_metadata(propagators: str) -> None:
    script = """
        import sys, threading
        import tracekit
        tracekit.configure(exporters=[])
        from concurrent.futures import ThreadPoolExecutor
        from tracekit._patch import is_patch
        assert is_patch(vars(threading.Thread)["start"])
        assert is_patch(vars(ThreadPoolExecutor)["submit"])
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("wrapt", "asyncio", "importlib")))
    """
    env = {"PATH": "/usr/bin:/bin", "OTEL_TRACES_EXPORTER": "none", "OTEL_PROPAGATORS": propagators}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    loaded = done.stdout.strip()
    assert "wrapt" not in loaded
    assert "asyncio" not in loaded
    assert "importlib.metadata" not in loaded


# ---------------------------------------------------------------------------- Plain wrappers


def _recording(calls: list[tuple[Any, tuple[Any, ...]]]) -> Any:
    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        calls.append((instance, args))
        return ("wrapped", wrapped(*args, **kwargs))

    return wrapper


def test_plain_wrappers_bind_the_instance_and_revert_exactly() -> None:
    module = types.ModuleType("hooked_plain")

    class Base:
        def method(self, x: int) -> tuple[Any, int]:
            return (self, x)

    class Child(Base):
        pass

    def function(x: int) -> int:
        return x * 2

    module.Child = Child  # type: ignore[attr-defined]
    module.function = function  # type: ignore[attr-defined]
    original = Base.method
    calls: list[tuple[Any, tuple[Any, ...]]] = []
    patches = Patches(
        "plain-test",
        {
            "hooked_plain": [
                ("Child.method", Plain(_recording(calls))),
                ("function", Plain(_recording(calls))),
            ]
        },
    )
    assert patches.apply(module) is True
    assert patches.apply(module) is False
    child = Child()
    assert child.method(1) == ("wrapped", (child, 1))
    assert Child.method(child, 2) == ("wrapped", (child, 2))  # called on the class
    assert module.function(3) == ("wrapped", 6)
    assert calls == [(child, (1,)), (child, (2,)), (None, (3,))]
    patched = vars(Child)["method"]
    assert is_patch(patched)
    assert original_of(patched) is original
    assert patched.__name__ == "method"
    assert patched.__wrapped__ is original
    assert patches.revert(module) is True
    assert "method" not in vars(Child), "an inherited target is removed again"
    assert Child.method is original
    assert module.function is function
    assert not is_patch(module.function)


def test_plain_refuses_what_it_cannot_bind() -> None:
    module = types.ModuleType("hooked_plain_static")

    class Owner:
        @staticmethod
        def helper() -> None:
            pass

    module.Owner = Owner  # type: ignore[attr-defined]
    original = vars(Owner)["helper"]
    patches = Patches("plain-test", {"hooked_plain_static": [("Owner.helper", Plain(_recording([])))]})
    with pytest.raises(TypeError):
        patches.apply(module)
    assert vars(Owner)["helper"] is original
    assert not patches.is_applied(module)


def test_a_target_met_at_run_time_is_wrapped_once_and_reverted_with_the_rest() -> None:
    module = types.ModuleType("hooked_extend")

    class Base:
        def method(self, x: int) -> tuple[Any, int]:
            return (self, x)

    class Own(Base):
        def method(self, x: int) -> tuple[Any, int]:
            return (self, x + 1)

    module.Base = Base  # type: ignore[attr-defined]
    calls: list[tuple[Any, tuple[Any, ...]]] = []
    patches = Patches("extend-test", {"hooked_extend": [("Base.method", Plain(_recording(calls)))]})
    own_original = vars(Own)["method"]
    assert patches.extend(module, Own, "method", Plain(_recording(calls))) is False  # not patched yet
    assert vars(Own)["method"] is own_original
    assert patches.apply(module) is True
    assert patches.extend(module, Own, "method", Plain(_recording(calls))) is True
    assert patches.extend(module, Own, "method", Plain(_recording(calls))) is False  # already wrapped
    own = Own()
    assert own.method(1) == ("wrapped", (own, 2))
    assert calls == [(own, (1,))]
    assert patches.revert(module) is True
    assert vars(Own)["method"] is own_original
    assert not is_patch(vars(Base)["method"])
