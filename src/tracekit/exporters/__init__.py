"""Span exporters tracekit builds from its settings."""

from tracekit.exporters.console import ConsoleSpanExporter

__all__ = ["ConsoleSpanExporter"]
