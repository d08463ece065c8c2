"""Finished spans to OTLP protobuf wire bytes, with no intermediate message objects.

:class:`Encoder` writes ``ExportTraceServiceRequest`` bytes directly: spans grouped by
resource and then by instrumentation scope, as the official encoder groups them, every
span field included. Requests are split so that none is larger than a size limit, and a
single span over the limit has its longest attribute values cut (counted in the
``tracekit.truncated`` attribute), so one outsized span never costs its neighbours.

Differences from ``opentelemetry-exporter-otlp-proto-common``, each on purpose:

* ``Span.flags`` and ``Link.flags`` carry the W3C trace flags in bits 0-7 (the sampled and
  random bits), as the OTLP specification defines them; the official Python encoder sets
  only the is-remote bits 8 and 9.
* ``Span.Link.trace_state`` is written; the official encoder leaves it out.
* A string that is not valid Unicode (a lone surrogate) is sent with the bad characters
  replaced rather than dropped.
* In a map value, a pair whose value OTLP cannot carry (an int beyond 64 bits) is left
  out alone; the official encoder drops the whole attribute.

The field numbers are those of ``opentelemetry/proto/trace/v1/trace.proto`` and
``common/v1/common.proto``; ``tests/test_encode.py`` checks the output against the official
messages.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

from tracekit._compat import span_fields_reader
from tracekit._logging import warn_once

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "TRUNCATED", "Encoder", "Request"]

#: The usual collector limit on one request (the OTLP receiver's default ``max_recv_msg_size``).
DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024

#: The attribute saying how many of a span's values were cut to fit a request.
TRUNCATED = "tracekit.truncated"

_fixed64 = struct.Struct("<Q").pack
# Span.trace_id and Span.span_id with their tags; Span.parent_span_id; the two times; flags.
_ids = struct.Struct(">BBQQBBQ").pack
_parent_id = struct.Struct(">BBQ").pack
_times = struct.Struct("<BQBQ").pack
_flags = struct.Struct("<BBI").pack
_LOW64 = (1 << 64) - 1
# ScopeSpans.spans with a two-byte length, the usual size of a span.
_SPAN_FRAME = struct.Struct("BBB").pack
_NOTHING = object()
_fixed32 = struct.Struct("<I").pack
_double = struct.Struct("<d").pack
_ONE_BYTE = tuple(bytes((n,)) for n in range(128))
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1

# Span.kind: the API's SpanKind values plus one (0 is SPAN_KIND_UNSPECIFIED), found by the
# member's id (an Enum member hashes through a Python method).
_KINDS = {id(kind): b"\x30" + _ONE_BYTE[kind.value + 1] for kind in SpanKind}
_read = span_fields_reader()
# Span.flags bits 8 and 9: SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK, SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK.
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200

# Tags (field number << 3 | wire type) of the fields written here.
_SPAN_ATTRIBUTE = b"\x4a"  # Span.attributes = 9
_EVENT_ATTRIBUTE = b"\x1a"  # Span.Event.attributes = 3
_LINK_ATTRIBUTE = b"\x22"  # Span.Link.attributes = 4
_RESOURCE_ATTRIBUTE = b"\x0a"  # Resource.attributes = 1
_SCOPE_ATTRIBUTE = b"\x1a"  # InstrumentationScope.attributes = 3
_VALUE_ITEM = b"\x0a"  # ArrayValue.values = 1, KeyValueList.values = 1

# Entries kept per cache of encoded attributes before it is emptied and refilled.
_CACHE_ENTRIES = 4096
# Values longer than this are encoded each time, never cached.
_CACHE_VALUE_CHARS = 256
# Bytes a length prefix and a tag add, at most, to a nested message.
_FRAME = 11
# The framed tracekit.truncated pair, at most (26 bytes for a count under 2**14).
_TRUNCATED_PAIR = 32


def _varint(value: int) -> bytes:
    if value < 128:
        return _ONE_BYTE[value]
    out = bytearray()
    while value > 127:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def _string(tag: bytes, text: str) -> bytes:
    data = _utf8(text)
    return tag + _varint(len(data)) + data


def _any_value(value: Any) -> bytes | None:
    """The body of an ``AnyValue``; ``None`` for a value OTLP cannot carry."""
    kind = type(value)
    if kind is str:
        data = _utf8(value)
        return b"\x0a" + _varint(len(data)) + data
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if kind is int:
        if not _INT64_MIN <= value <= _INT64_MAX:
            return None
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if kind is float:
        return b"\x21" + _double(value)
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray)):
        return b"\x3a" + _varint(len(value)) + bytes(value)
    if isinstance(value, str):
        return _any_value(str(value))
    if isinstance(value, bool):
        return _any_value(bool(value))
    if isinstance(value, int):
        return _any_value(int(value))
    if isinstance(value, float):
        return _any_value(float(value))
    if isinstance(value, Mapping):
        pairs: list[bytes] = []
        for key, item in value.items():
            pair = _key_value(str(key), item)
            if pair is not None:
                pairs += (_VALUE_ITEM, _varint(len(pair)), pair)
        body = b"".join(pairs)
        return b"\x32" + _varint(len(body)) + body
    if isinstance(value, Sequence):
        items: list[bytes] = []
        for item in value:
            encoded = _any_value(item)
            if encoded is None:
                return None
            items += (_VALUE_ITEM, _varint(len(encoded)), encoded)
        body = b"".join(items)
        return b"\x2a" + _varint(len(body)) + body
    return None


def _key_value(key: str, value: Any) -> bytes | None:
    """The body of a ``KeyValue``; ``None`` when the value cannot be carried."""
    encoded = _any_value(value)
    if encoded is None:
        warn_once(
            f"encode {key}",
            "tracekit: attribute %r has a value OTLP cannot carry (%s); it is left out of the span",
            key,
            type(value).__name__,
        )
        return None
    name = _utf8(key)
    return b"\x0a" + _varint(len(name)) + name + b"\x12" + _varint(len(encoded)) + encoded


class Request:
    """One encoded ``ExportTraceServiceRequest`` and how many spans it carries."""

    __slots__ = ("body", "spans")

    def __init__(self, body: bytes, spans: int) -> None:
        self.body = body
        self.spans = spans


# A resource or scope, encoded: its field in ResourceSpans / ScopeSpans, and the schema_url
# field that closes that message.
_Head = tuple[bytes, bytes]
_Group = tuple[_Head, dict["InstrumentationScope | None", tuple[_Head, list[bytes]]]]
# A span's attributes and events with their longest values cut.
_Cut = tuple[Mapping[str, Any], Sequence[Any]]


class Encoder:
    """Encodes batches of finished spans into requests of at most ``max_request_bytes``.

    Keeps small caches (resources, scopes, attribute pairs seen often), so one instance
    belongs to one export thread. ``truncated`` counts the spans whose values were cut,
    ``unfit`` those left out because nothing could make them fit.
    """

    def __init__(self, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> None:
        self.max_request_bytes = max_request_bytes
        self.truncated = 0
        self.unfit = 0
        self._pairs: dict[bytes, dict[str, dict[Any, bytes]]] = {}
        self._pair_count = 0
        self._resources: dict[int, tuple[Resource, object, _Head]] = {}
        self._scopes: dict[int, tuple[InstrumentationScope | None, _Head]] = {}
        self._last_status: object = None
        self._last_status_encoded = b""

    def encode(self, spans: Iterable[ReadableSpan]) -> list[Request]:
        """The requests that carry ``spans``, each within the size limit."""
        groups: dict[int, _Group] = {}
        encode_span = self._span
        last_resource: object = _NOTHING
        last_scope: object = _NOTHING
        bucket: list[bytes] = []
        budget = 0
        for span in spans:
            resource = span.resource
            scope = span.instrumentation_scope or None
            if resource is not last_resource or scope is not last_scope:
                last_resource, last_scope = resource, scope
                group = groups.get(id(resource))
                if group is None:
                    group = groups[id(resource)] = (self._resource(resource), {})
                entry = group[1].get(scope)
                if entry is None:
                    entry = group[1][scope] = (self._scope(scope), [])
                bucket = entry[1]
                budget = self.max_request_bytes - _overhead(group[0], entry[0])
            framed = encode_span(span)
            if len(framed) > budget:
                fitted = self._fit(span, budget)
                if fitted is None:
                    continue
                framed = fitted
            bucket.append(framed)
        return self._requests(groups.values())

    # ------------------------------------------------------------------ requests

    def _requests(self, groups: Iterable[_Group]) -> list[Request]:
        """``ExportTraceServiceRequest`` bodies of the grouped, framed spans, split at the limit."""
        limit = self.max_request_bytes
        requests: list[Request] = []
        done: list[bytes] = []  # the framed ResourceSpans of the request being filled
        size = count = 0
        for resource, scopes in groups:
            resource_done: list[bytes] = []  # its framed ScopeSpans in that request
            resource_size = len(resource[0]) + len(resource[1]) + _FRAME
            for scope, spans in scopes.values():
                chunk_size = len(scope[0]) + len(scope[1]) + _FRAME
                total = sum(map(len, spans))
                if size + resource_size + chunk_size + total <= limit:  # the usual case: all fit
                    resource_done.append(_framed(b"\x12", scope, spans))
                    resource_size += chunk_size + total
                    count += len(spans)
                    continue
                chunk: list[bytes] = []
                for framed in spans:
                    if count and size + resource_size + chunk_size + len(framed) > limit:
                        if chunk:
                            resource_done.append(_framed(b"\x12", scope, chunk))
                        if resource_done:
                            done.append(_framed(b"\x0a", resource, resource_done))
                        requests.append(Request(b"".join(done), count))
                        done, resource_done, chunk = [], [], []
                        size = count = 0
                        resource_size = len(resource[0]) + len(resource[1]) + _FRAME
                        chunk_size = len(scope[0]) + len(scope[1]) + _FRAME
                    chunk.append(framed)
                    chunk_size += len(framed)
                    count += 1
                if chunk:
                    resource_done.append(_framed(b"\x12", scope, chunk))
                    resource_size += chunk_size
            if resource_done:
                done.append(_framed(b"\x0a", resource, resource_done))
                size += resource_size
        if count:
            requests.append(Request(b"".join(done), count))
        return requests

    def _resource(self, resource: Resource) -> _Head:
        """``ResourceSpans.resource`` and ``.schema_url``; cached while the attributes stay the same."""
        attributes = resource.attributes
        cached = self._resources.get(id(resource))
        if cached is not None and cached[0] is resource and cached[1] is attributes:
            return cached[2]
        body = self._attributes(attributes, _RESOURCE_ATTRIBUTE)
        schema_url = resource.schema_url
        head = (b"\x0a" + _varint(len(body)) + body, _string(b"\x1a", schema_url) if schema_url else b"")
        if len(self._resources) >= 64:
            self._resources.clear()
        self._resources[id(resource)] = (resource, attributes, head)
        return head

    def _scope(self, scope: InstrumentationScope | None) -> _Head:
        """``ScopeSpans.scope`` and ``.schema_url``; cached by identity (equal scopes may differ:
        ``{"a": 1} == {"a": True}``)."""
        cached = self._scopes.get(id(scope))
        if cached is not None and cached[0] is scope:
            return cached[1]
        if scope is None:
            head = (b"\x0a\x00", b"")
        else:
            body = b"".join(
                (
                    _string(b"\x0a", scope.name) if scope.name else b"",
                    _string(b"\x12", scope.version) if scope.version else b"",
                    self._attributes(scope.attributes, _SCOPE_ATTRIBUTE) if scope.attributes else b"",
                )
            )
            schema_url = scope.schema_url
            head = (b"\x0a" + _varint(len(body)) + body, _string(b"\x1a", schema_url) if schema_url else b"")
        if len(self._scopes) >= 256:
            self._scopes.clear()
        self._scopes[id(scope)] = (scope, head)
        return head

    # ------------------------------------------------------------------ spans

    def _span(self, span: ReadableSpan, replaced: _Cut | None = None) -> bytes:
        """One ``ScopeSpans.spans`` field, framed; ``replaced``: its attributes and events, cut to fit."""
        context, parent, name, kind, start, end, attributes, dropped, status = _read(span)
        events = span.events if replaced is None else replaced[1]
        if replaced is not None:
            attributes = replaced[0]
        trace_id, span_id, _, trace_flags, trace_state, _ = context  # SpanContext is a tuple
        parts = [_ids(0x0A, 0x10, trace_id >> 64, trace_id & _LOW64, 0x12, 0x08, span_id)]
        if trace_state is not DEFAULT_TRACE_STATE and trace_state:
            parts.append(_string(b"\x1a", trace_state.to_header()))
        flags = _HAS_IS_REMOTE | trace_flags
        if parent is not None:
            _, parent_id, parent_is_remote, _, _, _ = parent
            parts.append(_parent_id(0x22, 0x08, parent_id))
            if parent_is_remote:
                flags |= _IS_REMOTE
        try:
            encoded_name = name.encode()
        except UnicodeEncodeError:
            encoded_name = name.encode("utf-8", "replace")
        size = len(encoded_name)
        parts += (
            b"\x2a",
            _ONE_BYTE[size] if size < 128 else _varint(size),
            encoded_name,
            _KINDS[id(kind)],
            _times(0x39, start or 0, 0x41, end or 0),
        )
        if attributes:
            parts.append(self._attributes(attributes, _SPAN_ATTRIBUTE))
        if dropped:
            parts += (b"\x50", _varint(dropped))
        for event in events:
            parts.append(self._event(event))
        dropped = span.dropped_events
        if dropped:
            parts += (b"\x60", _varint(dropped))
        for link in span.links:
            parts.append(self._link(link))
        dropped = span.dropped_links
        if dropped:
            parts += (b"\x70", _varint(dropped))
        if status is not self._last_status:
            self._last_status = status
            self._last_status_encoded = _status(status)
        parts += (self._last_status_encoded, _flags(0x85, 0x01, flags))
        body = b"".join(parts)
        size = len(body)
        return (
            _SPAN_FRAME(0x12, (size & 0x7F) | 0x80, size >> 7)
            if 127 < size < 16384
            else b"\x12" + _varint(size)
        ) + body

    def _event(self, event: Any) -> bytes:
        """``Span.events``, one framed ``Span.Event``."""
        body = b"\x09" + _fixed64(event.timestamp or 0)
        if event.name:
            body += _string(b"\x12", event.name)
        if event.attributes:
            body += self._attributes(event.attributes, _EVENT_ATTRIBUTE)
        dropped = event.dropped_attributes
        if dropped:
            body += b"\x20" + _varint(dropped)
        return b"\x5a" + _varint(len(body)) + body

    def _link(self, link: Any) -> bytes:
        """``Span.links``, one framed ``Span.Link``."""
        context = link.context
        body = (
            b"\x0a\x10"
            + context.trace_id.to_bytes(16, "big")
            + b"\x12\x08"
            + context.span_id.to_bytes(8, "big")
        )
        if context.trace_state:
            body += _string(b"\x1a", context.trace_state.to_header())
        if link.attributes:
            body += self._attributes(link.attributes, _LINK_ATTRIBUTE)
        dropped = link.dropped_attributes
        if dropped:
            body += b"\x28" + _varint(dropped)
        flags = _HAS_IS_REMOTE | context.trace_flags | (_IS_REMOTE if context.is_remote else 0)
        body += b"\x35" + _fixed32(flags)
        framed: bytes = b"\x6a" + _varint(len(body)) + body
        return framed

    def _attributes(self, attributes: Mapping[str, Any], tag: bytes) -> bytes:
        """Each attribute as a ``KeyValue`` framed under ``tag``.

        Pairs whose value is a short ``str`` or an ``int`` repeat from span to span
        (methods, routes, status codes, host names) and are cached, by tag, key and value;
        only those two exact types are looked up, as ``True == 1 == 1.0``.
        """
        cache = self._pairs.get(tag)
        if cache is None:
            cache = self._pairs[tag] = {}
        parts = []
        for key, value in attributes.items():
            kind = type(value)
            if (kind is str and len(value) <= _CACHE_VALUE_CHARS) or kind is int:
                by_value = cache.get(key)
                if by_value is None:
                    by_value = cache[key] = {}
                framed = by_value.get(value)
                if framed is None:
                    pair = _key_value(key, value)
                    if pair is None:
                        continue
                    framed = tag + _varint(len(pair)) + pair
                    if self._pair_count >= _CACHE_ENTRIES:
                        self._pairs.clear()
                        self._pairs[tag] = cache = {}
                        self._pair_count = 0
                        by_value = cache[key] = {}
                    by_value[value] = framed
                    self._pair_count += 1
                parts.append(framed)
            else:
                pair = _key_value(key, value)
                if pair is not None:
                    parts += (tag, _varint(len(pair)), pair)
        return b"".join(parts)

    # ------------------------------------------------------------------ fitting

    def _fit(self, span: ReadableSpan, budget: int) -> bytes | None:
        """``span`` encoded in at most ``budget`` bytes by cutting its longest values, or ``None``."""
        encoded = _fit_span(self, span, budget)
        if encoded is None:
            self.unfit += 1
            warn_once(
                "encode oversized span",
                "tracekit: span %r does not fit in an export request of %d bytes even with its values "
                "cut (too many attributes, events or links); it is not exported",
                span.name,
                self.max_request_bytes,
            )
            return None
        self.truncated += 1
        return encoded


def _overhead(resource: _Head, scope: _Head) -> int:
    return len(resource[0]) + len(resource[1]) + len(scope[0]) + len(scope[1]) + 3 * _FRAME


def _framed(tag: bytes, head: _Head, items: list[bytes]) -> bytes:
    body = b"".join((head[0], *items, head[1]))
    return tag + _varint(len(body)) + body


def _status(status: Any) -> bytes:
    """``Span.status``, always present (as the official encoder writes it)."""
    code = status.status_code.value
    description = status.description
    body = (_string(b"\x12", description) if description else b"") + (
        b"\x18" + _varint(code) if code else b""
    )
    return b"\x7a" + _varint(len(body)) + body


def _fit_span(encoder: Encoder, span: ReadableSpan, budget: int) -> bytes | None:
    """Cut the string values of ``span`` and of its events to one common length that fits.

    The length is the largest that brings the span within ``budget``; only values longer
    than it are cut (at a character boundary), and ``tracekit.truncated`` counts them.
    """
    events = list(span.events)
    maps: list[Mapping[str, Any]] = [span.attributes or {}, *(event.attributes or {} for event in events)]
    lengths = sorted(
        (len(_utf8(value)) for attributes in maps for value in attributes.values() if isinstance(value, str)),
        reverse=True,
    )
    excess = len(encoder._span(span)) + _TRUNCATED_PAIR - budget
    cap = _cap(lengths, excess)
    if cap is None:
        return None

    def cut(attributes: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
        out: dict[str, Any] = {}
        count = 0
        for key, value in attributes.items():
            if isinstance(value, str) and 4 * len(value) > cap:  # UTF-8: up to 4 bytes a character
                data = _utf8(value)
                if len(data) > cap:
                    value = data[:cap].decode("utf-8", "ignore")
                    count += 1
            out[key] = value
        return out, count

    attributes, truncated = cut(maps[0])
    cut_events = []
    for event in events:
        event_attributes, count = cut(event.attributes or {})
        truncated += count
        cut_events.append(_Replaced(event, attributes=event_attributes))
    attributes[TRUNCATED] = truncated
    encoded = encoder._span(span, (attributes, cut_events))
    return encoded if len(encoded) <= budget else None


def _cap(lengths: list[int], excess: int) -> int | None:
    """The largest length ``c`` with ``sum(max(0, n - c))`` at least ``excess``, or ``None``."""
    if excess <= 0:
        return lengths[0] if lengths else None
    total = 0
    for index, length in enumerate(lengths):
        following = lengths[index + 1] if index + 1 < len(lengths) else 0
        # Cutting the index + 1 longest values to `following` removes this much more:
        gain = (index + 1) * (length - following)
        if total + gain >= excess:
            return length - -(-(excess - total) // (index + 1))
        total += gain
    return None


class _Replaced:
    """An object that reads as ``original`` except for the attributes given."""

    def __init__(self, original: Any, **replaced: Any) -> None:
        self.__dict__.update(replaced)
        self._original = original

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)
