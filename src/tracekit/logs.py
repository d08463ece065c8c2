"""Trace ids on log lines.

With the standard library nothing needs importing: after :func:`tracekit.configure` every
:class:`logging.LogRecord` has ``trace_id``, ``span_id``, ``trace_sampled`` and
``service_name`` (switch it off with ``log_correlation=False`` or
``TRACEKIT_LOG_CORRELATION=false``)::

    logging.basicConfig(format="%(levelname)s %(message)s trace_id=%(trace_id)s span_id=%(span_id)s")

For structlog, add :func:`add_trace_context` to the processor chain::

    import structlog
    import tracekit.logs

    structlog.configure(
        processors=[tracekit.logs.add_trace_context, structlog.processors.JSONRenderer()]
    )

structlog is optional; tracekit never imports it.
"""

from tracekit._logs import add_trace_context

__all__ = ["add_trace_context"]
