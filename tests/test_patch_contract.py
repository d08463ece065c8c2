"""The patch contract, for every integration in the registry, each case in a fresh interpreter.

import then patch, patch then import (and instrument() imports nothing), patch twice,
patch / unpatch / patch, and unpatch leaves no wrapper behind. A fresh process per case
means no case sees a module another case imported or patched.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tracekit._registry import INTEGRATIONS

PRELUDE = textwrap.dedent(
    """
    import importlib, sys
    import tracekit
    from tracekit import _registry, _state
    from tracekit._patch import is_patch, original_of

    NAME = sys.argv[1]
    INTEGRATION = _registry.BY_NAME[NAME]
    IMPL = importlib.import_module(INTEGRATION.implementation)
    ALREADY = {name for name in INTEGRATION.modules if name in sys.modules}

    def import_library():
        for name in INTEGRATION.modules:
            importlib.import_module(name)

    def modules():
        return [sys.modules[name] for name in INTEGRATION.modules if name in sys.modules]

    def targets():
        return [target for module in modules() for target in IMPL.patches.targets(module)]

    def snapshot():
        return {(id(owner), attribute): vars(owner).get(attribute) for owner, attribute in targets()}

    def assert_patched_once():
        found = targets()
        assert found, "no patch targets"
        for owner, attribute in found:
            current = vars(owner)[attribute]
            assert is_patch(current), (owner, attribute)
            assert not is_patch(original_of(current)), ("wrapped twice", owner, attribute)
        for module in modules():
            assert IMPL.patches.is_applied(module)
        assert _state.integration_status[NAME][0] == "patched", _state.integration_status

    def assert_clean(before):
        for owner, attribute in targets():
            current = vars(owner).get(attribute)
            assert current is before[(id(owner), attribute)], (owner, attribute)
            assert not is_patch(current), (owner, attribute)
        for module in modules():
            assert not IMPL.patches.is_applied(module)
            for value in list(vars(module).values()):
                if issubclass(type(value), type):  # not isinstance(): lazy proxies stay unevaluated
                    for attribute, member in list(vars(value).items()):
                        assert not is_patch(member), (value, attribute)
    """
)

CASES = {
    "import_then_patch": """
        import_library()
        before = snapshot()
        tracekit.instrument(NAME)
        assert_patched_once()
        tracekit.uninstrument(NAME)
        assert_clean(before)
    """,
    "patch_then_import": """
        tracekit.instrument(NAME)
        for name in INTEGRATION.modules:
            assert name in ALREADY or name not in sys.modules, f"instrument() imported {name}"
        assert _state.integration_status[NAME][0] in ("waiting", "patched")
        import_library()
        assert_patched_once()
    """,
    "configure_imports_nothing": """
        tracekit.configure(exporters=["console"])
        for name in INTEGRATION.modules:
            assert name in ALREADY or name not in sys.modules, f"configure() imported {name}"
        import_library()
        assert_patched_once()
        tracekit.shutdown()
        for module in modules():
            assert not IMPL.patches.is_applied(module)
    """,
    "patch_twice": """
        import_library()
        tracekit.instrument(NAME)
        tracekit.instrument(NAME)
        for module in modules():
            assert IMPL.patch(module) is False
        assert_patched_once()
    """,
    "patch_unpatch_patch": """
        import_library()
        before = snapshot()
        tracekit.instrument(NAME)
        tracekit.uninstrument(NAME)
        assert_clean(before)
        tracekit.instrument(NAME)
        assert_patched_once()
        tracekit.uninstrument(NAME)
        tracekit.uninstrument(NAME)
        assert_clean(before)
    """,
    "unpatch_before_import_leaves_it_alone": """
        tracekit.instrument(NAME)
        tracekit.uninstrument(NAME)
        fresh = [name for name in INTEGRATION.modules if name not in ALREADY]
        import_library()
        for name in fresh:
            assert not IMPL.patches.is_applied(sys.modules[name])
    """,
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", [integration.name for integration in INTEGRATIONS])
def test_patch_contract(name: str, case: str) -> None:
    script = PRELUDE + textwrap.dedent(CASES[case]) + "\nprint('ok')\n"
    result = subprocess.run(
        [sys.executable, "-c", script, name],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "OTEL_TRACES_EXPORTER": "none"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert "Traceback" not in result.stderr, result.stderr
