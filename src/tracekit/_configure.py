"""``configure()`` and the :class:`Tracing` handle it returns."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.trace import TracerProvider

from tracekit import _exit, _fork, _logs, _registry, _state, _uwsgi
from tracekit._logging import logger
from tracekit._processor import BatchSpanProcessor
from tracekit._propagation import install_global
from tracekit._settings import Settings, load
from tracekit._stats import ExportStats
from tracekit._version import __version__

__all__ = ["Tracing", "configure", "shutdown", "stats"]

_LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

_lock = _fork.rlock()


class Tracing:
    """What :func:`configure` installed; flush it, shut it down, inspect its settings.

    ``enabled`` is ``False`` when ``OTEL_SDK_DISABLED=true`` (or ``disabled=True``): then
    nothing was installed and the methods do nothing.
    """

    def __init__(
        self,
        settings: Settings,
        sources: Mapping[str, str],
        provider: TracerProvider | None,
        previous_propagator: TextMapPropagator | None,
    ) -> None:
        self.settings = settings
        #: Where each setting's value came from: ``keyword``, an environment variable, or ``default``.
        self.sources = dict(sources)
        self.provider = provider
        self._previous_propagator = previous_propagator
        self._is_shut_down = False
        #: The ``tracekit`` logger's level before ``configure()`` applied ``OTEL_LOG_LEVEL``.
        self._previous_log_level = logging.NOTSET

    @property
    def enabled(self) -> bool:
        """Whether spans are being recorded and exported."""
        return self.provider is not None and not self._is_shut_down

    def force_flush(self, timeout: float = 30.0) -> bool:
        """Export every span ended so far; ``False`` if that did not finish within ``timeout`` seconds."""
        if not self.enabled or self.provider is None:
            return False
        deadline = time.monotonic() + timeout
        ok = True
        for processor in _processors(self.provider):
            remaining = max(0.0, deadline - time.monotonic())
            ok = processor.force_flush(int(remaining * 1000)) and ok
        return ok

    def shutdown(self, timeout: float | None = None) -> None:
        """Flush (within ``timeout`` seconds, by default the export time limit) and uninstall.

        After this, :func:`configure` may be called again; spans made in between are dropped.
        """
        with _lock:
            if self._is_shut_down:
                return
            self._is_shut_down = True
            if self.provider is not None:
                limit = self.settings.bsp_export_timeout if timeout is None else timeout
                deadline = time.monotonic() + limit
                for processor in _processors(self.provider):
                    remaining = max(0.0, deadline - time.monotonic())
                    processor.shutdown(int(remaining * 1000))
                self.provider.shutdown()
                if self._previous_propagator is not None:
                    install_global(self._previous_propagator)
            if _state.current is self:
                global _last_shut_down
                _last_shut_down = self
                _registry.uninstrument()
                _logs.uninstall()
                _state.current = None
                _state.launched = False
                _state.tracer = _state.Unconfigured()
                logger.setLevel(self._previous_log_level)

    def __repr__(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        return f"<tracekit.Tracing {state} service={self.settings.service_name!r}>"


def configure(**overrides: Any) -> Tracing:
    """Install tracing for this process, configured from keywords and ``OTEL_*`` variables.

    Keyword arguments win over environment variables, which win over defaults; see
    ``docs/configuration.md`` for every setting. A bad keyword raises
    :class:`~tracekit.ConfigError`; a bad environment value is logged and replaced by a
    fallback. Calling it again returns the first :class:`Tracing` (with a warning) and
    installs nothing more.
    """
    with _lock:
        if _state.current is not None:
            if _state.launched:
                _warn_configured_by_launcher(overrides)
            else:
                logger.warning(
                    "tracekit: configure() was already called; keeping the first configuration "
                    "(call tracekit.shutdown() first to reconfigure)"
                )
            return _state.current
        loaded = load(overrides)
        settings = loaded.settings
        integrations = _registry.plan(
            settings.instrument,
            settings.disabled_instrumentations,
            disabled_from_keyword=loaded.sources.get("disabled_instrumentations") == "keyword",
        )
        previous_log_level = logger.level
        logger.setLevel(_LOG_LEVELS[settings.log_level])
        if settings.disabled:
            logger.info("tracekit: tracing is disabled (OTEL_SDK_DISABLED); no spans are recorded")
            tracing = Tracing(settings, loaded.sources, None, None)
            tracing._previous_log_level = previous_log_level
            _state.current = tracing
            if settings.log_correlation:
                _logs.install()  # empty ids, but format strings that use them keep working
            return tracing

        from tracekit._propagation import make_propagator
        from tracekit._sdk import build_provider
        from tracekit._tracer import Tracer

        provider = build_provider(settings, loaded.sources)
        previous_propagator = install_global(make_propagator(settings.propagators))
        _install_global_provider(provider)
        tracing = Tracing(settings, loaded.sources, provider, previous_propagator)
        tracing._previous_log_level = previous_log_level
        _state.current = tracing
        _state.tracer = Tracer(provider.get_tracer("tracekit", __version__))
        if settings.log_correlation:
            _logs.install()
        _follow_worker_processes(provider)
        for integration in integrations:
            _registry.enable(integration)
        logger.debug("tracekit: configured %r from %s", tracing, loaded.sources)
        return tracing


def _warn_configured_by_launcher(overrides: Mapping[str, Any]) -> None:
    """``configure()`` in an application started by ``tracekit run``: say what is kept."""
    if not overrides:
        logger.debug("tracekit: configure() found tracing already configured by tracekit run")
        return
    logger.warning(
        "tracekit: tracing was configured by `tracekit run` from the environment; configure(%s) "
        "changes nothing. Set the equivalent OTEL_* variables (`tracekit config` lists them), "
        "or start the application without `tracekit run`",
        ", ".join(f"{name}=..." for name in overrides),
    )


def shutdown(timeout: float | None = None) -> None:
    """Flush and uninstall what :func:`configure` installed; a no-op if it was not called."""
    tracing = _state.current
    if tracing is not None:
        tracing.shutdown(timeout)


_last_shut_down: Tracing | None = None


def stats() -> ExportStats:
    """What became of the spans queued for export since :func:`configure`.

    Counts of spans exported, dropped (queue full), failed and rejected by the collector,
    export requests, retries and bytes sent, the spans queued now, and the last export
    problem with its time; summed over the exporters configured; and, when unsampled traces
    are kept for their errors or slowness, how many were kept and how many the buffer
    could not hold (all zero before
    :func:`configure`). Reading them costs nothing on the span path: the counters are
    plain integers the export thread keeps. After :func:`shutdown`, the counts of the
    configuration just shut down, until the next :func:`configure`.
    """
    tracing = _state.current or _last_shut_down
    if tracing is None or tracing.provider is None:
        return ExportStats()
    from tracekit._keep import KeepProcessor

    processors = _processors(tracing.provider)
    parts = [(p.counters, p.queued) for p in processors if isinstance(p, BatchSpanProcessor)]
    keep = [(p.kept, p.evicted) for p in processors if isinstance(p, KeepProcessor)]
    return ExportStats.total(parts, keep)


def _processors(provider: TracerProvider) -> tuple[Any, ...]:
    return tuple(provider._active_span_processor._span_processors)


_installed_providers: list[TracerProvider] = []


def _install_global_provider(provider: TracerProvider) -> None:
    """Make ``provider`` the OpenTelemetry API's global tracer provider.

    The API lets the global be set once per process. When the current global is one that
    tracekit installed and has since shut down, the guard is re-armed so that
    ``shutdown()`` followed by ``configure()`` works; a provider installed by someone else
    is left alone, with a warning.
    """
    current = trace.get_tracer_provider()
    if isinstance(current, trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    elif any(current is installed for installed in _installed_providers):
        once = getattr(trace, "_TRACER_PROVIDER_SET_ONCE", None)
        if once is not None and hasattr(once, "_done"):
            once._done = False
        trace.set_tracer_provider(provider)
    else:
        logger.warning(
            "tracekit: another TracerProvider (%s) is already installed globally; tracekit's own "
            "spans use tracekit's provider, spans made through the OpenTelemetry API use the other one",
            type(current).__name__,
        )
    _installed_providers[:] = [provider]


def _follow_worker_processes(provider: TracerProvider) -> None:
    """Worker processes export their own spans, with no hook of the user's (see ``_exit``, ``_uwsgi``)."""
    from tracekit._sdk import import_export_modules

    _exit.watch_multiprocessing()
    _exit.watch_celery()
    _exit.watch_signals()
    _uwsgi.follow(
        lambda: import_export_modules(
            p.exporter for p in _processors(provider) if isinstance(p, BatchSpanProcessor)
        )
    )
