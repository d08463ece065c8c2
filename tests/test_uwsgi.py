"""uWSGI's post-fork hook runs tracekit's child hooks; a uWSGI without threads is named.

These tests stand a module in for uWSGI's ``uwsgi`` (it exists only inside the server);
``tests/test_prefork_servers.py`` runs the real server.
"""

from __future__ import annotations

import logging
import os
import sys
import types
from pathlib import Path

import pytest

import tracekit
from tracekit import _fork, _uwsgi
from tracekit._doctor import diagnose


def nothing() -> None:
    """What there is to import before uWSGI forks, in these tests."""


@pytest.fixture
def uwsgi(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("uwsgi")
    module.has_threads = True  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "uwsgi", module)
    monkeypatch.delitem(sys.modules, "uwsgidecorators", raising=False)
    return module


@pytest.fixture
def as_a_worker(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Child hooks that record the pid they ran in; the process looks newly forked."""

    class Pids(list[int]):
        """A list that can be a hook's (weakly held) owner."""

    ran = Pids()
    monkeypatch.setattr(_fork, "_pid", -1)
    monkeypatch.setattr(_fork, "_immediate", [])
    _fork.in_child(ran, lambda it: it.append(os.getpid()))
    return ran


def test_the_post_fork_hook_runs_the_child_hooks_then_the_applications(
    uwsgi: types.ModuleType, as_a_worker: list[int]
) -> None:
    calls: list[str] = []
    uwsgi.post_fork_hook = lambda: calls.append("application")  # type: ignore[attr-defined]
    _uwsgi.follow(nothing)
    _uwsgi.follow(nothing)  # wrapped once, not twice
    uwsgi.post_fork_hook()  # type: ignore[attr-defined]
    uwsgi.post_fork_hook()  # type: ignore[attr-defined]  # the same worker: hooks ran already
    assert as_a_worker == [os.getpid()]
    assert calls == ["application", "application"]


def test_uwsgidecorators_imported_later_is_chained_again(
    uwsgi: types.ModuleType, as_a_worker: list[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _uwsgi.follow(nothing)
    # What uwsgidecorators does on import: its own chain replaces uWSGI's post-fork hook.
    (tmp_path / "uwsgidecorators.py").write_text(
        "import uwsgi\n"
        "postfork_chain = []\n"
        "def postfork_chain_hook():\n"
        "    for f in postfork_chain:\n"
        "        f()\n"
        "uwsgi.post_fork_hook = postfork_chain_hook\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import uwsgidecorators  # type: ignore[import-not-found]

        chain: list[str] = []
        uwsgidecorators.postfork_chain.append(lambda: chain.append("decorated"))
        uwsgi.post_fork_hook()  # type: ignore[attr-defined]
    finally:
        sys.modules.pop("uwsgidecorators", None)
    assert as_a_worker == [os.getpid()]
    assert chain == ["decorated"]


@pytest.mark.parametrize(
    "argv",
    [["-m", "pytest"], ["tests/test_uwsgi.py"], ["-m", "uwsgi_helpers"], ["manage.py", "uwsgi-config"]],
)
def test_without_uwsgi_nothing_is_hooked(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    monkeypatch.delitem(sys.modules, "uwsgi", raising=False)
    monkeypatch.delenv(_uwsgi.FORK_HOOKS_VARIABLE, raising=False)
    monkeypatch.setattr(sys, "orig_argv", [sys.executable, *argv])
    before = list(sys.meta_path)
    _uwsgi.follow(nothing)
    assert sys.meta_path == before
    assert _uwsgi.FORK_HOOKS_VARIABLE not in os.environ
    assert _uwsgi.problems() == []


def test_a_uwsgi_about_to_start_is_followed_at_the_first_import_after_its_module_exists(
    monkeypatch: pytest.MonkeyPatch, as_a_worker: list[int]
) -> None:
    monkeypatch.delitem(sys.modules, "uwsgi", raising=False)
    monkeypatch.setattr(sys, "orig_argv", [sys.executable, "/venv/bin/uwsgi", "--http", ":8000"])
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.delenv(_uwsgi.FORK_HOOKS_VARIABLE, raising=False)
    _uwsgi.follow(nothing)
    _uwsgi.follow(nothing)
    # uWSGI reads its options from the environment as it starts: Python's fork hooks will run.
    assert os.environ[_uwsgi.FORK_HOOKS_VARIABLE] == "1"
    watchers = [finder for finder in sys.meta_path if isinstance(finder, _uwsgi._Watch)]
    assert len(watchers) == 1
    __import__("json.tool")  # an import before uWSGI made its module: still watching
    assert watchers[0] in sys.meta_path
    assert as_a_worker == []

    uwsgi = types.ModuleType("uwsgi")
    uwsgi.has_threads = True  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "uwsgi", uwsgi)
    sys.modules.pop("tracekit_no_such_module", None)
    with pytest.raises(ImportError):
        __import__("tracekit_no_such_module")  # any import attempt is the moment
    assert watchers[0] not in sys.meta_path
    assert getattr(uwsgi.post_fork_hook, "__wrapped__", None) is _fork.run_child_hooks  # type: ignore[attr-defined]
    assert as_a_worker == [os.getpid()]  # a worker of --lazy-apps: the hooks ran there and then


def test_threads_disabled_is_one_warning_and_a_doctor_problem(
    uwsgi: types.ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    uwsgi.has_threads = False  # type: ignore[attr-defined]
    caplog.set_level(logging.WARNING, logger="tracekit")
    tracekit.configure(service_name="uwsgi-app", exporters=[])
    tracekit.shutdown()
    tracekit.configure(service_name="uwsgi-app", exporters=[])
    warnings = [record.getMessage() for record in caplog.records if "uWSGI" in record.getMessage()]
    assert warnings == [
        "tracekit: uWSGI runs without Python threads, so the export thread cannot send spans; "
        "start uWSGI with --enable-threads (enable-threads = true in an ini file)"
    ]
    report = diagnose({}, send_probe=False)
    found = [(f.level, f.subject, f.message, f.fix) for f in report.findings if f.subject == "uWSGI"]
    assert found == [("problem", "uWSGI", *_uwsgi.THREADS_DISABLED)]
    assert not report.healthy


def test_threads_enabled_is_quiet(uwsgi: types.ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tracekit")
    tracekit.configure(service_name="uwsgi-app", exporters=[])
    assert not [record for record in caplog.records if "uWSGI" in record.getMessage()]
    assert not [f for f in diagnose({}, send_probe=False).findings if f.subject == "uWSGI"]


@pytest.mark.parametrize(
    ("options", "imported"), [({}, ["before fork"]), ({"py-call-uwsgi-fork-hooks": True}, [])]
)
def test_a_running_uwsgi_without_fork_hooks_has_the_exports_imports_done_now(
    uwsgi: types.ModuleType, options: dict[str, object], imported: list[str]
) -> None:
    uwsgi.opt = options  # type: ignore[attr-defined]
    calls: list[str] = []
    _uwsgi.follow(lambda: calls.append("before fork"))
    assert calls == imported


def test_configure_under_uwsgi_imports_the_exporters_modules(uwsgi: types.ModuleType) -> None:
    uwsgi.opt = {}  # type: ignore[attr-defined]
    tracing = tracekit.configure(service_name="uwsgi-app", endpoint="http://127.0.0.1:9")
    (processor,) = tracing.provider._active_span_processor._span_processors  # type: ignore[union-attr]
    # Made now, on this thread, with every module it needs: no export thread runs yet.
    assert type(processor.exporter._transport).__name__ == "HTTPTransport"
    assert processor.exporter._encoder is not None
    assert processor._worker is None
