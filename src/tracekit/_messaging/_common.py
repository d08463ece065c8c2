"""What the Kafka helpers share: when to trace, and the integrations' descriptions of their library.

The configuration is resolved once per :func:`tracekit.configure`; :class:`Producer` and
:class:`Consumer` are how a client integration describes its library as data; :func:`restore_context`
undoes a context attach for send and process spans alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextvars import Token
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context

from tracekit import _state
from tracekit._propagation import span_injector
from tracekit._semconv import qualified_name
from tracekit._suppression import instrumentation_suppressed

if TYPE_CHECKING:
    from tracekit._messaging._produce import Delivery

__all__ = [
    "BYTES",
    "Args",
    "Attributes",
    "Client",
    "Config",
    "Consumer",
    "Kwargs",
    "Producer",
    "active_config",
    "client_of",
    "configuration_for",
    "restore_context",
    "split_servers",
]

Args = tuple[Any, ...]
Kwargs = dict[str, Any]
Attributes = dict[str, Any]

BYTES = (bytes, bytearray, memoryview)
_DEFAULT_PORT = 9092


# --------------------------------------------------------------------------- configuration


class Config:
    """What the settings say about messaging spans, resolved once per configuration."""

    __slots__ = ("dup", "extract", "fields", "inject_span")

    def __init__(self, settings: Any) -> None:
        # Imported here, once configure() has loaded it safely (see tracekit._propagation).
        from opentelemetry import propagate

        self.inject_span = span_injector()
        self.extract = propagate.extract
        self.fields = frozenset(name.lower() for name in propagate.get_global_textmap().fields)
        self.dup = "messaging/dup" in settings.semconv_opt_in


_config: Config | None = None
_config_for: object = None


def active_config() -> Config | None:
    """The configuration to trace with, or ``None``: not configured, disabled or suppressed."""
    current = _state.current
    if current is None or instrumentation_suppressed():
        return None
    return configuration_for(current)


def configuration_for(current: Any) -> Config | None:
    global _config, _config_for
    if _config_for is not current:
        _config = Config(current.settings) if current.enabled else None
        _config_for = current
    return _config


# --------------------------------------------------------------------------- descriptions


@dataclass(frozen=True)
class Client:
    """Who talks to the broker: read once per producer or consumer object."""

    client_id: str | None = None
    group: str | None = None
    address: str | None = None
    port: int | None = None


_CLIENT = "_tracekit_client"


def client_of(instance: Any, describe: Callable[[Any], Client]) -> Client:
    """``describe(instance)``, remembered on the instance."""
    found = getattr(instance, "__dict__", {}).get(_CLIENT)
    if found is None:
        found = describe(instance)
        with contextlib.suppress(AttributeError, TypeError):
            vars(instance)[_CLIENT] = found
    return found


def split_servers(servers: Any) -> tuple[str | None, int | None]:
    """``(server.address, server.port)`` of the first bootstrap server (``host:port`` list or string)."""
    if isinstance(servers, (list, tuple)):
        servers = servers[0] if servers else None
    if not isinstance(servers, str):
        return None, None
    first = servers.split(",")[0].strip()
    if "://" in first:
        first = first.split("://", 1)[1]
    if first.startswith("["):
        host, _, rest = first[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif first.count(":") == 1:
        host, _, port_text = first.partition(":")
    else:
        host, port_text = first, ""
    if not host:
        return None, None
    return host, int(port_text) if port_text.isdigit() else _DEFAULT_PORT


@dataclass(frozen=True)
class Producer:
    """A producer class's send method, as data."""

    integration: str
    #: The send method's parameters in order (``topic``, ``value``, ``key``, ``headers``,
    #: ``partition`` are looked up by name; the others are only skipped over).
    params: tuple[str, ...]
    client: Callable[[Any], Client]
    #: ``watch(result, delivery)``: arrange for the library's delivery report on ``result``
    #: (what the send call returned) to reach ``delivery``.
    watch: Callable[[Any, Delivery], None] | None = None
    #: ``prepare(instance, delivery, args, kwargs)``: last changes to the call (confluent-kafka
    #: puts its delivery callback there).
    prepare: Callable[[Any, Delivery, Args, Kwargs], tuple[Args, Kwargs]] | None = None


def _error_type(exc: BaseException) -> str:
    return qualified_name(type(exc))


@dataclass(frozen=True)
class Consumer:
    """A consumer class, as data."""

    integration: str
    client: Callable[[Any], Client]
    #: For libraries that return errors as messages (confluent-kafka): ``None`` for a record,
    #: the ``error.type`` of an error, ``""`` for an event that is neither (end of partition).
    error_of: Callable[[Any], str | None] | None = None
    #: ``error.type`` of an exception raised by a receive call.
    error_type: Callable[[BaseException], str] = _error_type


# --------------------------------------------------------------------------- context


def restore_context(token: Any) -> None:
    """Undo an attach, quietly when it was made in another context (a task, a thread)."""
    if isinstance(token, Token):
        with contextlib.suppress(ValueError, RuntimeError):
            token.var.reset(token)
    elif token is not None:
        otel_context.detach(token)
