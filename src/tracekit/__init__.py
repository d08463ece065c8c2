"""tracekit: connected distributed traces for Python services, configured in one call.

>>> import tracekit
>>> tracing = tracekit.configure(service_name="checkout-api")

Everything public is listed in ``__all__``; modules whose names start with ``_`` are
private and may change without notice.

The names are imported on first use: ``import tracekit`` itself loads nothing else, so
the ``tracekit`` command (``tracekit run`` starts every launched application) and code
that only decorates functions at import time do not pay for the OpenTelemetry SDK before
they need it.
"""

from tracekit._version import __version__

TYPE_CHECKING = False  # not typing's: importing typing alone costs the `tracekit` command a few ms
if TYPE_CHECKING:
    from tracekit._configure import Tracing, configure, shutdown, stats
    from tracekit._decorator import span, traced
    from tracekit._errors import ConfigError
    from tracekit._registry import instrument, uninstrument
    from tracekit._stats import ExportStats

del TYPE_CHECKING

__all__ = [
    "ConfigError",
    "ExportStats",
    "Tracing",
    "__version__",
    "configure",
    "instrument",
    "shutdown",
    "span",
    "stats",
    "traced",
    "uninstrument",
]

_HOMES = {
    "ConfigError": "tracekit._errors",
    "Tracing": "tracekit._configure",
    "configure": "tracekit._configure",
    "shutdown": "tracekit._configure",
    "stats": "tracekit._configure",
    "ExportStats": "tracekit._stats",
    "span": "tracekit._decorator",
    "traced": "tracekit._decorator",
    "instrument": "tracekit._registry",
    "uninstrument": "tracekit._registry",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'tracekit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
