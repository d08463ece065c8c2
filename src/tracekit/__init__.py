"""tracekit: connected distributed traces for Python services, configured in one call.

>>> import tracekit
>>> tracing = tracekit.configure(service_name="checkout-api")

Everything public is listed in ``__all__``; modules whose names start with ``_`` are
private and may change without notice.
"""

from tracekit._configure import Tracing, configure, shutdown
from tracekit._decorator import span, traced
from tracekit._errors import ConfigError
from tracekit._registry import instrument, uninstrument
from tracekit._version import __version__

__all__ = [
    "ConfigError",
    "Tracing",
    "__version__",
    "configure",
    "instrument",
    "shutdown",
    "span",
    "traced",
    "uninstrument",
]
