"""The settings in force and the integrations' status, as the ``tracekit`` command shows them.

Both come from the declarations: every setting of ``_settings`` with its value parsed by its
declared kind and the source it came from (``tracekit config``), every row of the
``_registry`` table with the installed library's version and what would happen to it
(``tracekit integrations``). Header values, declared secret, are shown as ``<hidden>``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from tracekit import _registry, _state
from tracekit._logging import logger
from tracekit._settings import Declaration, KeyValues, Loaded, Milliseconds, declarations, load

__all__ = [
    "ConfigRow",
    "IntegrationRow",
    "captured_warnings",
    "config_rows",
    "config_rows_of",
    "effective",
    "integration_rows",
    "integration_rows_of",
    "render_config",
    "render_integrations",
]

_HIDDEN = "<hidden>"


@contextmanager
def captured_warnings() -> Iterator[list[logging.LogRecord]]:
    """Collect what tracekit logs at WARNING and above instead of printing it."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(logging.WARNING)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def effective() -> tuple[Loaded, list[logging.LogRecord]]:
    """The settings in force: this process's when configured, else read from the environment."""
    tracing = _state.current
    if tracing is not None:
        return Loaded(tracing.settings, tracing.sources), []
    with captured_warnings() as records:
        loaded = load()
        _registry.plan(True, loaded.settings.disabled_instrumentations, disabled_from_keyword=False)
    return loaded, records


@dataclass(frozen=True)
class ConfigRow:
    """One setting as ``tracekit config`` shows it."""

    name: str
    env: tuple[str, ...]
    value: Any  # JSON-able; header values masked; durations in milliseconds
    display: str
    source: str  # default, environment or argument
    variable: str | None  # the variable the value was read from
    default: str
    doc: str

    def as_json(self) -> dict[str, Any]:
        row = asdict(self)
        row["env"] = list(self.env)
        return row


def _json_value(decl: Declaration, value: Any) -> Any:
    if isinstance(decl.kind, KeyValues) and isinstance(value, Mapping):
        return {key: _HIDDEN if decl.kind.secret else item for key, item in value.items()}
    if isinstance(decl.kind, Milliseconds) and isinstance(value, (int, float)):
        return round(value * 1000, 3)
    if isinstance(value, tuple):
        return [item if isinstance(item, str) else type(item).__name__ for item in value]
    return value


def _display(decl: Declaration, value: Any) -> str:
    shown = _json_value(decl, value)
    if value is None:
        default = decl.describe_default()
        return default if default.startswith("(") else f"(default: {default})"
    if isinstance(shown, bool):
        return str(shown).lower()
    if isinstance(decl.kind, Milliseconds):
        return f"{shown:g} ms"
    if isinstance(shown, float):
        return f"{shown:g}"
    if isinstance(shown, list):
        return ",".join(shown) or "(empty)"
    if isinstance(shown, dict):
        return ",".join(f"{key}={item}" for key, item in shown.items()) or "(empty)"
    return str(shown)


def config_rows_of(loaded: Loaded) -> list[ConfigRow]:
    rows = []
    for decl in declarations():
        value = getattr(loaded.settings, decl.name)
        source = loaded.sources.get(decl.name, "default")
        variable = source if source not in ("default", "keyword") else None
        rows.append(
            ConfigRow(
                name=decl.name,
                env=decl.env,
                value=_json_value(decl, value),
                display=_display(decl, value),
                source="environment" if variable else ("argument" if source == "keyword" else "default"),
                variable=variable,
                default=decl.describe_default(),
                doc=decl.doc,
            )
        )
    return rows


def config_rows() -> list[ConfigRow]:
    """Every declared setting with its effective value and where that value came from."""
    loaded, records = effective()
    for record in records:  # `tracekit config` still says what was wrong with a value
        print(record.getMessage(), file=sys.stderr)
    return config_rows_of(loaded)


def render_config(rows: list[ConfigRow]) -> str:
    width = max(len(row.name) for row in rows)
    value_width = min(48, max(len(row.display) for row in rows))
    lines = []
    for row in rows:
        source = f"{row.variable}" if row.variable else row.source
        lines.append(f"{row.name:<{width}}  {row.display:<{value_width}}  {source}")
    return "\n".join(lines)


@dataclass(frozen=True)
class IntegrationRow:
    """One integration as ``tracekit integrations`` shows it."""

    name: str
    library: str  # the distribution, or "stdlib"
    version: str | None  # installed version; None when not installed
    min_version: str | None
    status: str  # patched, available, not installed, too old, disabled by env, disabled, skipped
    detail: str

    @property
    def installed(self) -> bool:
        return self.version is not None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _installed_version(integration: _registry.Integration, by_module: dict[str, list[str]]) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    from importlib.util import find_spec

    tops = {module.split(".")[0] for module in integration.modules}
    if not any(find_spec(top) is not None for top in tops):
        return None
    if integration.distribution is None:
        return "{}.{}.{}".format(*sys.version_info[:3])
    names = [integration.distribution]
    for top in sorted(tops):  # a module installed by another distribution (psycopg2-binary)
        if not by_module:
            from importlib.metadata import packages_distributions

            by_module.update(packages_distributions())
        names.extend(by_module.get(top, ()))
    for name in names:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "unknown"


def integration_rows_of(loaded: Loaded) -> list[IntegrationRow]:
    settings = loaded.settings
    disabled = {_registry.canonical(name) for name in settings.disabled_instrumentations}
    disabled_by = loaded.sources.get("disabled_instrumentations", "default")
    selection = settings.instrument
    in_process = _registry.status() if _state.current is not None else {}
    by_module: dict[str, list[str]] = {}
    rows = []
    for integration in _registry.INTEGRATIONS:
        installed = _installed_version(integration, by_module)
        state, detail = in_process.get(integration.name, ("", ""))
        if integration.name in disabled:
            status = "disabled by env" if disabled_by != "keyword" else "disabled"
            detail = f"listed in {disabled_by}" if disabled_by != "keyword" else "disabled_instrumentations="
        elif selection is False or (not isinstance(selection, bool) and integration.name not in selection):
            status, detail = "disabled", "not selected by configure(instrument=...)"
        elif installed is None:
            status, detail = "not installed", ""
        elif (
            integration.min_version
            and installed != "unknown"
            and integration.distribution is not None
            and _registry._version_tuple(installed) < _registry._version_tuple(integration.min_version)
        ):
            status = "too old"
            detail = f"{integration.min_version} or later is supported"
        elif state == "patched":
            status, detail = "patched", ""
        elif state == "skipped":
            status = "skipped"
        else:
            status = "available"
            detail = "patched when the application imports it" if not state else detail
        rows.append(
            IntegrationRow(
                name=integration.name,
                library=integration.distribution or "stdlib",
                version=installed,
                min_version=integration.min_version,
                status=status,
                detail=detail,
            )
        )
    return rows


def integration_rows() -> list[IntegrationRow]:
    """Every integration in the registry with its library's installed version and its status."""
    loaded, _ = effective()
    return integration_rows_of(loaded)


def render_integrations(rows: list[IntegrationRow]) -> str:
    width = max(len(row.name) for row in rows)
    lib_width = max(len(f"{row.library} {row.version or ''}") for row in rows)
    lines = []
    for row in rows:
        library = f"{row.library} {row.version or '-'}"
        detail = f"  ({row.detail})" if row.detail else ""
        lines.append(f"{row.name:<{width}}  {library:<{lib_width}}  {row.status}{detail}")
    return "\n".join(lines)
