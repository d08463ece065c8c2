"""The header carrier: how the propagators read and write a Kafka record's headers.

Records carry headers as ``(str, bytes)`` pairs (a list or a tuple) or a dict; :data:`HEADERS`
reads them for extraction, and :func:`with_context` copies them with the injected fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from opentelemetry.propagators.textmap import Getter

from tracekit._messaging._common import BYTES

__all__ = ["HEADERS", "with_context"]


def _pairs(headers: Any) -> Iterable[Any]:
    if headers is None:
        return ()
    if isinstance(headers, Mapping):
        return headers.items()
    return cast(Iterable[Any], headers)


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, BYTES):
        return bytes(value).decode("utf-8", "replace")
    return None


class _Headers(Getter[Any]):
    """Kafka record headers for the propagators: ``(str, bytes)`` pairs or a dict, names any case."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        found = []
        for pair in _pairs(carrier):
            if not (isinstance(pair, tuple) and len(pair) == 2):
                continue
            name, value = pair
            if isinstance(name, str) and name.lower() == key:
                text = _text(value)
                if text is not None:
                    found.append(text)
        return found or None

    def keys(self, carrier: Any) -> list[str]:
        return [pair[0] for pair in _pairs(carrier) if isinstance(pair, tuple) and len(pair) == 2]


#: The one getter every Kafka integration extracts with.
HEADERS = _Headers()


def with_context(headers: Any, carrier: dict[str, str], replaced: frozenset[str]) -> Any:
    """A copy of ``headers`` in the caller's form, ``replaced`` names dropped, ``carrier`` added.

    ``None`` when the form is not one tracekit can copy (the record is then sent as given).
    """
    drop = replaced.union(name.lower() for name in carrier)
    added = [(name, value.encode("utf-8")) for name, value in carrier.items()]
    if headers is None:
        return added
    if isinstance(headers, dict):
        copied = {k: v for k, v in headers.items() if not (isinstance(k, str) and k.lower() in drop)}
        copied.update(added)
        return copied
    if isinstance(headers, (list, tuple)):
        kept = [
            pair
            for pair in headers
            if not (
                isinstance(pair, tuple)
                and len(pair) == 2
                and isinstance(pair[0], str)
                and pair[0].lower() in drop
            )
        ]
        kept.extend(added)
        return tuple(kept) if isinstance(headers, tuple) else kept
    return None
