"""tracekit's benchmark suite: tracekit side by side with OpenTelemetry Python, in one run.

Run it with ``nox -s bench`` or ``python -m benchmarks [--quick] [NAME ...]``; see
``docs/performance.md`` for the latest figures.
"""
