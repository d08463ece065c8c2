"""Propagator names (OTEL_PROPAGATORS) to propagator instances.

The official OpenTelemetry propagators do the work: W3C Trace Context and Baggage from
``opentelemetry-api``, B3 from ``opentelemetry-propagator-b3`` and Jaeger from
``opentelemetry-propagator-jaeger``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator

__all__ = ["install_global", "make_propagator"]


def _tracecontext() -> TextMapPropagator:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator()


def _baggage() -> TextMapPropagator:
    from opentelemetry.baggage.propagation import W3CBaggagePropagator

    return W3CBaggagePropagator()


def _b3() -> TextMapPropagator:
    from opentelemetry.propagators.b3 import B3SingleFormat

    return B3SingleFormat()


def _b3multi() -> TextMapPropagator:
    from opentelemetry.propagators.b3 import B3MultiFormat

    return B3MultiFormat()


def _jaeger() -> TextMapPropagator:
    from opentelemetry.propagators.jaeger import JaegerPropagator

    return JaegerPropagator()


_FACTORIES: dict[str, Callable[[], TextMapPropagator]] = {
    "tracecontext": _tracecontext,
    "baggage": _baggage,
    "b3": _b3,
    "b3multi": _b3multi,
    "jaeger": _jaeger,
}


def make_propagator(names: Sequence[str]) -> CompositePropagator:
    """One composite propagator running ``names`` in order; ``none`` contributes nothing.

    Extraction runs in order, so when two formats carry a context, the later one wins, as
    the specification's composite propagator does.
    """
    return CompositePropagator([_FACTORIES[name]() for name in names if name != "none"])


def install_global(propagator: TextMapPropagator) -> TextMapPropagator:
    """Make ``propagator`` the API's global one; return the one it replaces.

    ``opentelemetry.propagate`` reads ``OTEL_PROPAGATORS`` when first imported and raises
    on a name it cannot load, which would stop the application over a typo. tracekit has
    already parsed (and reported on) that variable, so the module is imported with the
    variable hidden, then given the propagator tracekit built.
    """
    if "opentelemetry.propagate" not in sys.modules:
        saved = os.environ.get("OTEL_PROPAGATORS")
        os.environ["OTEL_PROPAGATORS"] = "none"
        try:
            import opentelemetry.propagate  # noqa: F401
        finally:
            if saved is None:
                del os.environ["OTEL_PROPAGATORS"]
            else:
                os.environ["OTEL_PROPAGATORS"] = saved
    from opentelemetry import propagate

    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(propagator)
    return previous
