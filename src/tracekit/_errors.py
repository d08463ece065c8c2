"""Exceptions raised by tracekit's public API."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A keyword argument given to :func:`tracekit.configure` is not valid.

    The message names the argument, the value and what is accepted. Problems found in
    environment variables never raise: they are logged once and a fallback is used.
    """
