"""``tracekit run CMD...``: start a command with tracing configured before its first import.

The launcher puts the directory of tracekit's bootstrap ``sitecustomize`` first on
``PYTHONPATH`` and replaces itself with ``CMD`` (``exec``, so signals, the exit status and
the process id are the command's own). Every Python interpreter started from there on, the
command itself and any child process it spawns, imports the bootstrap while starting up;
the bootstrap calls :func:`bootstrap`, which configures tracekit from the ``OTEL_*``
variables once per process. A forked child inherits its parent's configuration and does
not configure again.

With ``OTEL_SDK_DISABLED=true`` the command is started exactly as given: nothing is added
to its environment, so nothing is configured or patched.

This module is imported by the ``tracekit`` command on every start: it imports nothing
beyond the standard library until it has to.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing stays out of `tracekit run`'s start-up
if TYPE_CHECKING:
    from collections.abc import Mapping, MutableMapping, Sequence

__all__ = ["BOOTSTRAP_DIR", "bootstrap", "launch_environment", "run"]

#: The directory holding the bootstrap ``sitecustomize.py``.
BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bootstrap")


def sdk_disabled(environ: Mapping[str, str]) -> bool:
    """Whether ``OTEL_SDK_DISABLED`` turns tracing off.

    Read as its declaration in ``_settings`` reads it (a ``Boolean``: ``true`` or
    ``false``, case and surrounding blanks ignored), without importing the declarations,
    which ``tracekit run`` would pay for on every start. Any other value counts as
    ``false`` here; the launched process reports it, once, when it reads its settings.
    tests/test_launcher.py checks that both readings agree.
    """
    return environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def launch_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment ``CMD`` runs with: ``environ`` with the bootstrap first on ``PYTHONPATH``.

    A bootstrap entry already there (``tracekit run`` inside ``tracekit run``) is moved to
    the front rather than repeated. Unchanged when tracing is disabled.
    """
    env = dict(environ)
    if sdk_disabled(environ):
        return env
    entries = [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]
    entries = [entry for entry in entries if not _same_dir(entry, BOOTSTRAP_DIR)]
    env["PYTHONPATH"] = os.pathsep.join([BOOTSTRAP_DIR, *entries])
    return env


def run(command: Sequence[str]) -> int:
    """Replace this process with ``command`` under the launch environment.

    Returns (instead of replacing the process) only when ``command`` cannot be started:
    127 when it is not found, 126 when it cannot be executed, as a shell would.
    """
    env = launch_environment(os.environ)
    try:
        if os.name == "nt":  # no exec that keeps the process: run it and pass its status on
            import subprocess

            return subprocess.call(list(command), env=env)
        os.execvpe(command[0], list(command), env)
    except FileNotFoundError:
        print(f"tracekit run: command not found: {command[0]}", file=sys.stderr)
        return 127
    except (PermissionError, OSError) as exc:
        print(f"tracekit run: cannot run {command[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 126
    return 0  # pragma: no cover - execvpe does not return


def bootstrap(environ: MutableMapping[str, str] | None = None) -> None:
    """Configure tracing from the environment, once per process; never raises.

    Called by the bootstrap ``sitecustomize`` while the interpreter starts. A forked child
    already holds its parent's configuration (its export thread restarts by itself), so
    nothing runs twice. Any failure is reported in one line on stderr and the application
    starts untraced.
    """
    environ = os.environ if environ is None else environ
    try:
        if sdk_disabled(environ):
            return
        from tracekit import _state
        from tracekit._configure import configure

        if _state.current is not None:
            return
        configure()
        _state.launched = True
    except Exception as exc:
        print(f"tracekit: tracing was not started: {type(exc).__name__}: {exc}", file=sys.stderr)


def _same_dir(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))
