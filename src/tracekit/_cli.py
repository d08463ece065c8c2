"""The ``tracekit`` command (also ``python -m tracekit``).

``run CMD...``
    start CMD with tracing configured from the ``OTEL_*`` variables (see ``_launcher``)
``doctor``
    the effective configuration, the problems found in it, the installed libraries and
    whether each would be patched, and one probe span sent to the configured exporter
``config``
    every setting, its effective value and where the value came from
``integrations``
    every integration, the installed library version and its status

``run`` is on the start-up path of every launched application, so it imports nothing but
``os`` and ``sys`` (and the launcher); the other subcommands import what they need.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing and argparse are left out of `tracekit run`'s start-up
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any

__all__ = ["main"]

_DESCRIPTION = "Distributed tracing for Python services: launcher and diagnostics."
_RUN_USAGE = "tracekit run CMD [ARGS...]"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tracekit`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["run"]:
        return _run(args[1:])
    parsed = _parser().parse_args(args)
    if parsed.command is None:
        _parser().print_help(sys.stderr)
        return 2
    if parsed.command == "doctor":
        from tracekit._doctor import diagnose

        report = diagnose()
        _emit(report.as_json() if parsed.json else report.render(), parsed.json)
        return 0 if report.healthy else 1
    from tracekit import _inspect

    if parsed.command == "config":
        settings = _inspect.config_rows()
        text = _inspect.render_config(settings)
        _emit([row.as_json() for row in settings] if parsed.json else text, parsed.json)
        return 0
    integrations = _inspect.integration_rows()
    text = _inspect.render_integrations(integrations)
    _emit([row.as_json() for row in integrations] if parsed.json else text, parsed.json)
    return 0


def _emit(document: Any, as_json: bool) -> None:
    if as_json:
        import json

        print(json.dumps(document, indent=2))
    else:
        print(document)


def _run(command: list[str]) -> int:
    if command[:1] == ["--"]:
        command = command[1:]
    if not command or command[0] in ("-h", "--help"):
        stream = sys.stdout if command else sys.stderr
        print(f"usage: {_RUN_USAGE}", file=stream)
        print(
            "\nStart CMD with tracing configured from the OTEL_* environment variables before its\n"
            "first import; every installed library tracekit integrates with is patched when\n"
            "imported. OTEL_SDK_DISABLED=true starts CMD untouched.",
            file=stream,
        )
        return 0 if command else 2
    from tracekit._launcher import run

    return run(command)


def _parser() -> argparse.ArgumentParser:
    import argparse

    from tracekit._version import __version__

    parser = argparse.ArgumentParser(prog="tracekit", description=_DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"tracekit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "run",
        help="start CMD with tracing configured from the environment",
        usage=_RUN_USAGE,
    )
    doctor = commands.add_parser(
        "doctor",
        help="check the configuration and send one probe span (exit status 1 when unhealthy)",
        description="Print the effective configuration, every problem found with a suggested fix, the "
        "installed libraries tracekit can patch, then send one probe span to the configured exporter "
        "and report the outcome. Exit status 0 when healthy, 1 when not.",
    )
    doctor.add_argument("--json", action="store_true", help="print one JSON document")
    config = commands.add_parser(
        "config", help="every setting, its effective value and where it came from (secrets masked)"
    )
    config.add_argument("--json", action="store_true", help="print JSON")
    integrations = commands.add_parser(
        "integrations", help="every integration, the installed library version and its status"
    )
    integrations.add_argument("--json", action="store_true", help="print JSON")
    return parser
