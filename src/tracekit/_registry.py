"""The explicit table of integrations, and instrument / uninstrument by name.

Each row says which module's import triggers the integration, where its ``patch`` and
``unpatch`` live, which distribution and minimum version it supports, and which
OpenTelemetry contrib instrumentor would make it redundant. Nothing here imports an
instrumented library: ``instrument()`` registers a post-import hook per trigger module,
which patches at once when the module is already imported.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from tracekit import _fork, _state
from tracekit._errors import ConfigError
from tracekit._importhook import when_imported
from tracekit._logging import logger
from tracekit._safety import guard

__all__ = ["INTEGRATIONS", "Integration", "instrument", "plan", "status", "uninstrument"]


@dataclass(frozen=True)
class Integration:
    """One integration, as data."""

    #: The name used by instrument(), configure(instrument=[...]) and OTEL_PYTHON_DISABLED_INSTRUMENTATIONS.
    name: str
    #: Modules whose import triggers the patch; ``patch(module)`` runs once for each.
    modules: tuple[str, ...]
    #: The tracekit module defining ``patch(module)``, ``unpatch(module)`` and ``patches``.
    implementation: str
    #: The distribution whose version is checked against ``min_version`` (None: standard library).
    distribution: str | None = None
    min_version: str | None = None
    #: ``(module, class)`` of the OpenTelemetry contrib instrumentor for the same library.
    instrumentor: tuple[str, str] | None = None


INTEGRATIONS: tuple[Integration, ...] = (
    Integration(
        "threading",
        ("threading", "concurrent.futures.thread"),
        "tracekit.integrations.threading",
        instrumentor=("opentelemetry.instrumentation.threading", "ThreadingInstrumentor"),
    ),
    Integration(
        "httpx",
        ("httpx",),
        "tracekit.integrations.httpx",
        "httpx",
        "0.23",
        ("opentelemetry.instrumentation.httpx", "HTTPXClientInstrumentor"),
    ),
    Integration(
        "requests",
        ("requests",),
        "tracekit.integrations.requests",
        "requests",
        "2.25",
        ("opentelemetry.instrumentation.requests", "RequestsInstrumentor"),
    ),
    Integration(
        "urllib3",
        ("urllib3",),
        "tracekit.integrations.urllib3",
        "urllib3",
        "2.0",
        ("opentelemetry.instrumentation.urllib3", "URLLib3Instrumentor"),
    ),
    Integration(
        "urllib",
        ("urllib.request",),
        "tracekit.integrations.urllib",
        instrumentor=("opentelemetry.instrumentation.urllib", "URLLibInstrumentor"),
    ),
    Integration(
        "aiohttp_client",
        ("aiohttp",),
        "tracekit.integrations.aiohttp_client",
        "aiohttp",
        "3.12",
        ("opentelemetry.instrumentation.aiohttp_client", "AioHttpClientInstrumentor"),
    ),
    Integration(
        "starlette",
        ("starlette.applications", "starlette.routing"),
        "tracekit.integrations.starlette",
        "starlette",
        "0.20",
        ("opentelemetry.instrumentation.starlette", "StarletteInstrumentor"),
    ),
    Integration(
        "fastapi",
        ("fastapi.applications", "fastapi.routing"),
        "tracekit.integrations.fastapi",
        "fastapi",
        "0.90",
        ("opentelemetry.instrumentation.fastapi", "FastAPIInstrumentor"),
    ),
    Integration(
        "uvicorn", ("uvicorn.config", "uvicorn.server"), "tracekit.integrations.uvicorn", "uvicorn", "0.20"
    ),
    Integration(
        "hypercorn", ("hypercorn.app_wrappers",), "tracekit.integrations.hypercorn", "hypercorn", "0.15"
    ),
    Integration(
        "flask",
        ("flask",),
        "tracekit.integrations.flask",
        "flask",
        "2.2",
        ("opentelemetry.instrumentation.flask", "FlaskInstrumentor"),
    ),
    Integration(
        "django",
        ("django.core.handlers.wsgi", "django.core.handlers.base", "django.core.handlers.exception"),
        "tracekit.integrations.django",
        "django",
        "3.2",
        ("opentelemetry.instrumentation.django", "DjangoInstrumentor"),
    ),
    Integration(
        "kafka_python",
        ("kafka",),
        "tracekit.integrations.kafka_python",
        "kafka-python",
        "2.0",
        ("opentelemetry.instrumentation.kafka", "KafkaInstrumentor"),
    ),
    Integration(
        "confluent_kafka",
        ("confluent_kafka",),
        "tracekit.integrations.confluent_kafka",
        "confluent-kafka",
        "2.0",
        ("opentelemetry.instrumentation.confluent_kafka", "ConfluentKafkaInstrumentor"),
    ),
    Integration(
        "aiokafka",
        ("aiokafka",),
        "tracekit.integrations.aiokafka",
        "aiokafka",
        "0.8",
        ("opentelemetry.instrumentation.aiokafka", "AIOKafkaInstrumentor"),
    ),
    Integration(
        "sqlite3",
        ("sqlite3",),
        "tracekit.integrations.sqlite3",
        instrumentor=("opentelemetry.instrumentation.sqlite3", "SQLite3Instrumentor"),
    ),
    Integration(
        "psycopg",
        ("psycopg",),
        "tracekit.integrations.psycopg",
        "psycopg",
        "3.1",
        ("opentelemetry.instrumentation.psycopg", "PsycopgInstrumentor"),
    ),
    Integration(
        "psycopg2",
        ("psycopg2",),
        "tracekit.integrations.psycopg2",
        "psycopg2",
        "2.8",
        ("opentelemetry.instrumentation.psycopg2", "Psycopg2Instrumentor"),
    ),
    Integration(
        "pymysql",
        ("pymysql",),
        "tracekit.integrations.pymysql",
        "pymysql",
        "1.0",
        ("opentelemetry.instrumentation.pymysql", "PyMySQLInstrumentor"),
    ),
    Integration(
        "asyncpg",
        ("asyncpg",),
        "tracekit.integrations.asyncpg",
        "asyncpg",
        "0.27",
        ("opentelemetry.instrumentation.asyncpg", "AsyncPGInstrumentor"),
    ),
    Integration(
        "redis",
        ("redis",),
        "tracekit.integrations.redis",
        "redis",
        "4.5",
        ("opentelemetry.instrumentation.redis", "RedisInstrumentor"),
    ),
    Integration(
        "sqlalchemy",
        ("sqlalchemy",),
        "tracekit.integrations.sqlalchemy",
        "sqlalchemy",
        "2.0",
        ("opentelemetry.instrumentation.sqlalchemy", "SQLAlchemyInstrumentor"),
    ),
)

BY_NAME: dict[str, Integration] = {integration.name: integration for integration in INTEGRATIONS}

_lock = _fork.rlock()
#: (integration, module) pairs whose post-import hook is registered and has not fired yet.
_pending: set[tuple[str, str]] = set()


def canonical(name: str) -> str:
    """``aiohttp-client`` and ``AIOHTTP_CLIENT`` both mean ``aiohttp_client``."""
    return name.strip().lower().replace("-", "_")


def _lookup(names: Iterable[str], where: str, *, strict: bool) -> list[Integration]:
    found: list[Integration] = []
    for raw in names:
        integration = BY_NAME.get(canonical(raw))
        if integration is None:
            message = f"{where}: unknown integration {raw!r} (known: {', '.join(BY_NAME)})"
            if strict:
                raise ConfigError(message)
            logger.warning("tracekit: %s; ignored", message)
        elif integration not in found:
            found.append(integration)
    return found


def plan(
    selection: bool | Sequence[str], disabled: Sequence[str], disabled_from_keyword: bool
) -> list[Integration]:
    """The integrations ``configure()`` instruments: ``selection`` less ``disabled``.

    Unknown names raise :class:`ConfigError` when they come from a keyword and are logged
    (and ignored) when they come from the environment.
    """
    if selection is False:
        chosen: list[Integration] = []
    elif selection is True:
        chosen = list(INTEGRATIONS)
    else:
        chosen = _lookup(selection, "configure(instrument=...)", strict=True)
    where = (
        "configure(disabled_instrumentations=...)"
        if disabled_from_keyword
        else "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
    )
    removed = _lookup(disabled, where, strict=disabled_from_keyword)
    for integration in removed:
        _state.integration_status[integration.name] = ("skipped", f"disabled by {where}")
    return [integration for integration in chosen if integration not in removed]


def instrument(*names: str) -> None:
    """Patch the named integrations (all of them when no name is given).

    A library already imported is patched at once; one imported later is patched when
    it is imported. Instrumenting twice is a no-op. Unknown names raise
    :class:`~tracekit.ConfigError`.
    """
    selected = _lookup(names, "instrument()", strict=True) if names else list(INTEGRATIONS)
    for integration in selected:
        enable(integration)


def uninstrument(*names: str) -> None:
    """Undo :func:`instrument` for the named integrations (all of them when no name is given).

    The libraries' original functions are restored exactly; a library imported later is
    left alone. Unknown names raise :class:`~tracekit.ConfigError`.
    """
    selected = _lookup(names, "uninstrument()", strict=True) if names else list(INTEGRATIONS)
    for integration in selected:
        disable(integration)


def enable(integration: Integration) -> None:
    """Ask for ``integration``: patch its loaded trigger modules now, the others on import."""
    with _lock:
        if integration.name in _state.wanted_integrations:
            return
        _state.wanted_integrations.add(integration.name)
        _state.integration_status[integration.name] = ("waiting", "for its library to be imported")
        to_register = [m for m in integration.modules if (integration.name, m) not in _pending]
        _pending.update((integration.name, m) for m in to_register)
    for module_name in to_register:
        when_imported(module_name, _hook(integration, module_name))


def disable(integration: Integration) -> None:
    """Stop wanting ``integration`` and restore every module it patched."""
    with _lock:
        was_wanted = integration.name in _state.wanted_integrations
        _state.wanted_integrations.discard(integration.name)
        for module_name in integration.modules:
            module = sys.modules.get(module_name)
            if module is None:
                continue
            with guard(integration.name):
                _implementation(integration).unpatch(module)
        if was_wanted:
            _state.integration_status[integration.name] = ("uninstrumented", "")


def status() -> dict[str, tuple[str, str]]:
    """``name -> (state, detail)`` for every integration in the table."""
    with _lock:
        return {
            integration.name: _state.integration_status.get(integration.name, ("not instrumented", ""))
            for integration in INTEGRATIONS
        }


def _hook(integration: Integration, module_name: str) -> Any:
    def on_import(module: ModuleType) -> None:
        with _lock:
            _pending.discard((integration.name, module_name))
            if integration.name not in _state.wanted_integrations:
                return
            with guard(integration.name):
                _patch(integration, module)

    return on_import


def _implementation(integration: Integration) -> Any:
    return importlib.import_module(integration.implementation)


def _patch(integration: Integration, module: ModuleType) -> None:
    skip = _reason_to_skip(integration)
    if skip is not None:
        _state.integration_status[integration.name] = ("skipped", skip)
        return
    _implementation(integration).patch(module)
    _state.integration_status[integration.name] = ("patched", "")


def _reason_to_skip(integration: Integration) -> str | None:
    if integration.distribution and integration.min_version:
        installed = _installed_version(integration.distribution)
        if installed is not None and _version_tuple(installed) < _version_tuple(integration.min_version):
            reason = (
                f"{integration.distribution} {installed} is older than {integration.min_version}, "
                f"the oldest version the {integration.name} integration supports"
            )
            logger.warning("tracekit: not instrumenting %s: %s", integration.name, reason)
            return reason
    if integration.instrumentor and _instrumented_by_opentelemetry(*integration.instrumentor):
        reason = f"already instrumented by {integration.instrumentor[0]}.{integration.instrumentor[1]}"
        logger.info("tracekit: not instrumenting %s: %s", integration.name, reason)
        return reason
    return None


def _installed_version(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _version_tuple(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split("."):
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match.group()))
    return tuple(parts)


def _instrumented_by_opentelemetry(module_name: str, class_name: str) -> bool:
    module = sys.modules.get(module_name)
    instrumentor_class = getattr(module, class_name, None)
    instance = getattr(instrumentor_class, "_instance", None)
    return bool(getattr(instance, "_is_instrumented_by_opentelemetry", False))
