"""``tracekit.exporters._encode``: OTLP bytes checked against the official encoder's messages.

Every request the encoder writes is decoded with the official protobuf classes and compared
with what ``opentelemetry.exporter.otlp.proto.common.trace_encoder.encode_spans`` makes of
the same spans, after the encoder's deliberate differences are checked and taken out:

* ``Span.flags`` and ``Link.flags`` carry the W3C trace flags in bits 0-7 (the official
  encoder sets only bits 8 and 9);
* ``Link.trace_state`` is written (the official encoder leaves it out);
* a lone surrogate is sent replaced (the official encoder cannot encode it).

Messages are compared by their deterministic serialization, so NaN doubles (never equal to
themselves) and the sign of zero are compared bit for bit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PBSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as PBStatus
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

import tracekit
from tracekit._tracer import _Span
from tracekit.exporters._encode import DEFAULT_MAX_REQUEST_BYTES, TRUNCATED, Encoder, Request

#: A limit no test batch reaches: one request, nothing cut.
NO_LIMIT = 1 << 40
MIB = 1024 * 1024
HAS_IS_REMOTE = 0x100
IS_REMOTE = 0x200

# --------------------------------------------------------------------------- helpers


def grouped(spans: Iterable[ReadableSpan]) -> list[ReadableSpan]:
    """``spans`` in the order both encoders write them: by resource, then scope, then as given."""
    groups: dict[Any, dict[Any, list[ReadableSpan]]] = {}
    for span in spans:
        groups.setdefault(span.resource, {}).setdefault(span.instrumentation_scope or None, []).append(span)
    return [span for scopes in groups.values() for listed in scopes.values() for span in listed]


def flat(message: ExportTraceServiceRequest) -> list[PBSpan]:
    return [span for rs in message.resource_spans for ss in rs.scope_spans for span in ss.spans]


def official(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    """The official encoder's request for ``spans``, as a receiver decodes it."""
    return ExportTraceServiceRequest.FromString(encode_spans(spans).SerializeToString())


def checked(body: bytes, spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    """``body`` decoded, with tracekit's deliberate differences checked, then taken out.

    ``spans`` are the spans the body carries, in the order they were given to the encoder.
    """
    message = ExportTraceServiceRequest.FromString(body)
    decoded = flat(message)
    originals = grouped(spans)
    assert len(decoded) == len(originals)
    for pb_span, span in zip(decoded, originals, strict=True):
        assert pb_span.span_id == span.context.span_id.to_bytes(8, "big")
        assert pb_span.flags & 0xFF == span.context.trace_flags
        pb_span.flags &= ~0xFF
        assert len(pb_span.links) == len(span.links)
        for pb_link, link in zip(pb_span.links, span.links, strict=True):
            assert pb_link.flags & 0xFF == link.context.trace_flags
            pb_link.flags &= ~0xFF
            assert pb_link.trace_state == link.context.trace_state.to_header()
            pb_link.trace_state = ""
    return message


def assert_same(actual: Any, expected: Any) -> None:
    """Equal protobuf messages, bit for bit (NaN and -0.0 included)."""
    if actual.SerializeToString(deterministic=True) != expected.SerializeToString(deterministic=True):
        assert actual == expected  # shows the difference
        pytest.fail(f"same by ==, different bits (NaN payload or sign of zero):\n{actual}\n{expected}")


def assert_matches_official(requests: list[Request], spans: Sequence[ReadableSpan]) -> None:
    """One request carrying ``spans``, equal to the official encoder's."""
    assert len(requests) == 1
    assert requests[0].spans == len(spans)
    assert_same(checked(requests[0].body, spans), official(spans))


def value(any_value: AnyValue) -> Any:
    """An ``AnyValue`` as (which field, Python value); arrays and maps hold such pairs."""
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return (kind, tuple(value(item) for item in any_value.array_value.values))
    if kind == "kvlist_value":
        return (kind, attrs(any_value.kvlist_value.values))
    return (kind, getattr(any_value, kind))


def attrs(pairs: Iterable[KeyValue]) -> list[tuple[str, Any]]:
    return [(pair.key, value(pair.value)) for pair in pairs]


def by_span_id(requests: list[Request]) -> dict[int, tuple[PBSpan, ExportTraceServiceRequest]]:
    """Every span of ``requests``, decoded, by span id, with the request it came in."""
    found: dict[int, tuple[PBSpan, ExportTraceServiceRequest]] = {}
    for request in requests:
        message = ExportTraceServiceRequest.FromString(request.body)
        assert len(flat(message)) == request.spans
        for pb_span in flat(message):
            span_id = int.from_bytes(pb_span.span_id, "big")
            assert span_id not in found
            found[span_id] = (pb_span, message)
    return found


def official_span(span: ReadableSpan) -> PBSpan:
    (pb_span,) = flat(official([span]))
    return pb_span


def normalized(pb_span: PBSpan, span: ReadableSpan) -> PBSpan:
    """A copy of a decoded span with the trace flags checked and taken out (no links here)."""
    copy = PBSpan()
    copy.CopyFrom(pb_span)
    assert copy.flags & 0xFF == span.context.trace_flags
    copy.flags &= ~0xFF
    return copy


RESOURCE = Resource({"service.name": "checkout", "service.version": "1.2.3"})
SCOPE = InstrumentationScope("tracekit.test", "0.1")
TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C


def simple_span(
    span_id: int,
    attributes: Mapping[str, Any] | None = None,
    events: Sequence[Event] = (),
    name: str | None = None,
    resource: Resource = RESOURCE,
    scope: InstrumentationScope | None = SCOPE,
) -> ReadableSpan:
    return ReadableSpan(
        name=f"span {span_id}" if name is None else name,
        context=SpanContext(TRACE_ID, span_id, is_remote=False, trace_flags=TraceFlags(1)),
        parent=SpanContext(TRACE_ID, 0xFFFF, is_remote=False),
        resource=resource,
        attributes=attributes,
        events=events,
        kind=SpanKind.SERVER,
        start_time=1_700_000_000_000_000_000 + span_id,
        end_time=1_700_000_000_001_000_000 + span_id,
        instrumentation_scope=scope,
    )


# --------------------------------------------------------------------------- 1. equivalence

_CHARS = st.characters(exclude_categories=("Cs",))  # no lone surrogates: tested on their own
texts = st.text(_CHARS, max_size=12)
special_texts = st.sampled_from(
    ["", "😀", "日本語のテキスト", "naïve 🎉 ünïcödé", "\x00nul", "\u2028\ufeff\u200d", "x" * 300]
)
#: ~100k characters of 1 to 4 bytes each; built once (and shared, as real values often are).
LONG_TEXTS = ("a" * 100_000, "é" * 100_000, "中" * 100_000, "😀" * 100_000, "x中😀é" * 25_000)
keys = st.one_of(
    st.sampled_from(["http.request.method", "db.system", "k", "😀", "键"]),
    st.text(_CHARS, min_size=1, max_size=8),
)
int64s = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0, 1, -1, 127, 128, -128, 2**31, 2**63 - 1, -(2**63)]),
)
#: Ints OTLP cannot carry: both encoders leave the attribute out.
big_ints = st.one_of(st.integers(2**63, 2**80), st.integers(-(2**80), -(2**63) - 1))
scalars = st.one_of(
    st.none(), st.booleans(), int64s, st.floats(), texts, special_texts, st.binary(max_size=8)
)
homogeneous = st.one_of(
    st.lists(st.booleans(), max_size=4),
    st.lists(int64s, max_size=4),
    st.lists(st.floats(), max_size=4),
    st.lists(texts, max_size=4),
).map(tuple)
#: Every AnyValue the SDK accepts, nested (tuples and lists, heterogeneous, maps).
nested = st.recursive(
    scalars | homogeneous,
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(tuple),
        st.lists(children, max_size=3),
        st.dictionaries(keys, children, max_size=3),
    ),
    max_leaves=8,
)
# Out-of-range ints only where both encoders drop the whole attribute: at the top and in
# sequences (inside a map tracekit drops only the pair; see test_out_of_range_int_in_a_map).
top_values = st.one_of(
    nested,
    st.sampled_from(LONG_TEXTS),
    big_ints,
    st.tuples(int64s, big_ints),
    st.tuples(st.tuples(big_ints)),
)


@st.composite
def attribute_maps(draw: st.DrawFn, values: st.SearchStrategy[Any] = top_values) -> Any:
    """None, a plain dict, or a BoundedAttributes that may have dropped some."""
    kind = draw(st.sampled_from(["none", "dict", "bounded"]))
    if kind == "none":
        return None
    mapping = draw(st.dictionaries(keys, values, max_size=5))
    if kind == "dict":
        return mapping
    return BoundedAttributes(draw(st.none() | st.integers(0, 4)), mapping, immutable=True)


trace_states = st.lists(
    st.tuples(
        st.from_regex(r"[a-z][a-z0-9_\-*/]{0,8}", fullmatch=True),
        st.from_regex(r"[!-+\--<>-~]{1,8}", fullmatch=True),  # printable, no ',' or '='
    ),
    max_size=3,
    unique_by=lambda pair: pair[0],
).map(TraceState)
span_contexts = st.builds(
    SpanContext,
    trace_id=st.integers(0, 2**128 - 1),
    span_id=st.integers(0, 2**64 - 1),
    is_remote=st.booleans(),
    trace_flags=st.integers(0, 255).map(TraceFlags),
    trace_state=trace_states,
)
times = st.integers(0, 2**64 - 1)
events = st.builds(Event, name=texts, attributes=attribute_maps(), timestamp=times)
links = st.builds(Link, context=span_contexts, attributes=attribute_maps())
statuses = st.one_of(
    st.builds(Status, st.sampled_from([StatusCode.UNSET, StatusCode.OK])),
    st.builds(Status, st.just(StatusCode.ERROR), st.none() | texts | special_texts),
)
schema_urls = st.sampled_from(["", "https://opentelemetry.io/schemas/1.21.0"])


@st.composite
def maybe_bounded(draw: st.DrawFn, items: st.SearchStrategy[Any]) -> Sequence[Any]:
    """A tuple, or a BoundedList that may have dropped some (dropped_events/_links)."""
    listed = draw(st.lists(items, max_size=3))
    if draw(st.booleans()):
        return tuple(listed)
    bounded: BoundedList[Any] = BoundedList(draw(st.integers(0, 3)))
    bounded.extend(listed)
    return bounded


@st.composite
def batches(draw: st.DrawFn) -> list[ReadableSpan]:
    # Distinct resources, shared by several spans each (the official encoder groups by
    # equality, tracekit by identity: the same thing for distinct resources).
    resources = [
        Resource(
            {**draw(st.dictionaries(keys, nested | big_ints, max_size=4)), "pool.index": index},
            draw(schema_urls),
        )
        for index in range(draw(st.integers(1, 3)))
    ]
    # Scope names from a small set and values that compare equal across types (1 == True ==
    # 1.0), so equal scopes that encode differently meet in one batch and across batches.
    scope_values = st.sampled_from([1, True, 1.0, 0, False, 0.0]) | nested | big_ints
    scope_attributes = st.none() | st.dictionaries(
        st.sampled_from(["a", "b"]) | keys, scope_values, max_size=3
    )
    scopes = draw(
        st.lists(
            st.none()
            | st.builds(
                InstrumentationScope,
                name=st.sampled_from(["", "lib", "other.lib"]),
                version=st.none() | st.sampled_from(["", "1.0"]),
                schema_url=st.none() | schema_urls,
                attributes=scope_attributes,
            ),
            min_size=1,
            max_size=3,
        )
    )
    spans = st.builds(
        ReadableSpan,
        name=texts | special_texts,
        context=span_contexts,
        parent=st.none() | span_contexts,
        resource=st.sampled_from(resources),
        attributes=attribute_maps(),
        events=maybe_bounded(events),
        links=maybe_bounded(links),
        kind=st.sampled_from(SpanKind),
        status=statuses,
        start_time=st.none() | times,
        end_time=st.none() | times,
        instrumentation_scope=st.sampled_from(scopes),
    )
    return draw(st.lists(spans, min_size=1, max_size=6))


#: One encoder for every example, so its caches (resources, scopes, attribute pairs,
#: statuses) carry over from batch to batch as they do in an exporter.
_SHARED_ENCODER = Encoder(NO_LIMIT)


@given(spans=batches())
@settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
def test_encoding_matches_the_official_encoder(spans: list[ReadableSpan]) -> None:
    requests = Encoder(NO_LIMIT).encode(spans)
    assert_matches_official(requests, spans)
    # The long-lived encoder's caches change nothing.
    assert [request.body for request in _SHARED_ENCODER.encode(spans)] == [requests[0].body]


def test_every_value_type_matches_the_official_encoder() -> None:
    """One span with each kind of value at once (the property test draws them a few at a time)."""
    values = {
        "str": "plain",
        "empty": "",
        "emoji": "😀🎉",
        "cjk": "日本語",
        "long": LONG_TEXTS[4],
        "true": True,
        "false": False,
        "zero": 0,
        "negative": -42,
        "int64.max": 2**63 - 1,
        "int64.min": -(2**63),
        "float": 1.5,
        "nan": float("nan"),
        "inf": float("-inf"),
        "negative.zero": -0.0,
        "bytes": b"\x00\xff",
        "none": None,
        "strs": ("a", "", "😀"),
        "bools": (True, False),
        "ints": (0, -1, 2**63 - 1),
        "floats": (0.5, float("inf")),
        "empty.tuple": (),
        "mixed": ("a", 1, None, (2.5, False)),
        "map": {"inner": "x", "deeper": {"n": 1}},
        "too.big": 2**63,
        "too.small": -(2**63) - 1,
        "too.big.in.tuple": (1, 2**64),
    }
    span = ReadableSpan(
        name="all values",
        context=SpanContext(TRACE_ID, 7, is_remote=False, trace_flags=TraceFlags(1)),
        resource=Resource(values),
        attributes=BoundedAttributes(None, values, immutable=True),
        events=[Event("event", BoundedAttributes(None, values, immutable=True), 5)],
        links=[Link(SpanContext(TRACE_ID, 8, is_remote=True), BoundedAttributes(None, values))],
        instrumentation_scope=InstrumentationScope("scope", "1", "", values),
        start_time=1,
        end_time=2,
    )
    requests = Encoder(NO_LIMIT).encode([span])
    assert_matches_official(requests, [span])
    (pb_span,) = flat(ExportTraceServiceRequest.FromString(requests[0].body))
    kept = [key for key, _ in attrs(pb_span.attributes)]
    assert kept == [key for key in values if not key.startswith("too.")]


# --------------------------------------------------------------------------- 2. tracekit's spans


def test_spans_from_tracekits_tracer_match_the_official_encoder() -> None:
    exporter = InMemorySpanExporter()
    tracing = tracekit.configure(exporters=[exporter], instrument=False, service_name="x")
    remote = SpanContext(
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "value"), ("other", "1")]),
    )
    linked = SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=TraceFlags(0))
    with tracekit.span(
        "checkout",
        kind=SpanKind.SERVER,
        attributes={"http.route": "/cart/{id}", "cart.items": 3},
        links=[Link(remote, {"link.reason": "follows"}), Link(linked)],
        currency="EUR",
    ) as outer:
        outer.add_event("validated", {"rules": ("a", "b"), "ratio": 0.25, "ok": True})
        with tracekit.span("reserve", kind=SpanKind.CLIENT, peer="inventory") as inner:
            inner.set_attribute("rows", (1, 2, 3))
            try:
                raise ValueError("out of stock: 😀")
            except ValueError as exc:
                inner.record_exception(exc)
        with pytest.raises(KeyError), tracekit.span("lookup", kind=SpanKind.INTERNAL):
            raise KeyError("missing")
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(remote)))
    try:
        with tracekit.span("from remote parent", kind=SpanKind.CONSUMER) as consumer:
            consumer.set_status(Status(StatusCode.ERROR, "failed downstream"))
    finally:
        otel_context.detach(token)
    assert tracing.force_flush()
    spans = list(exporter.get_finished_spans())
    assert [span.name for span in spans] == ["reserve", "lookup", "checkout", "from remote parent"]
    assert all(type(span) is _Span for span in spans)

    requests = Encoder().encode(spans)
    assert_matches_official(requests, spans)

    decoded = {span.name: span for span in flat(ExportTraceServiceRequest.FromString(requests[0].body))}
    trace_flags = {span.name: span.context.trace_flags for span in spans}
    assert all(flags & TraceFlags.SAMPLED for flags in trace_flags.values())
    assert [event.name for event in decoded["reserve"].events] == ["exception"]
    assert [event.name for event in decoded["lookup"].events] == ["exception"]
    assert decoded["lookup"].status.code == PBStatus.STATUS_CODE_ERROR
    assert decoded["checkout"].parent_span_id == b""
    assert decoded["reserve"].parent_span_id == decoded["checkout"].span_id
    assert decoded["checkout"].flags == HAS_IS_REMOTE | trace_flags["checkout"]
    assert decoded["from remote parent"].parent_span_id == remote.span_id.to_bytes(8, "big")
    assert (
        decoded["from remote parent"].flags == HAS_IS_REMOTE | IS_REMOTE | trace_flags["from remote parent"]
    )
    assert [(link.flags, link.trace_state) for link in decoded["checkout"].links] == [
        (HAS_IS_REMOTE | IS_REMOTE | 1, "vendor=value,other=1"),
        (HAS_IS_REMOTE, ""),
    ]


# --------------------------------------------------------------------------- 3. golden bytes


def golden_server_span() -> ReadableSpan:
    return ReadableSpan(
        name="GET /cart",
        context=SpanContext(TRACE_ID, 0xB7AD6B7169203331, is_remote=False, trace_flags=TraceFlags(1)),
        resource=Resource({"service.name": "checkout"}),
        attributes=BoundedAttributes(None, {"http.request.method": "GET", "http.response.status_code": 200}),
        kind=SpanKind.SERVER,
        status=Status(StatusCode.UNSET),
        start_time=1_700_000_000_000_000_000,
        end_time=1_700_000_000_001_500_000,
        instrumentation_scope=InstrumentationScope("tracekit", "1.0"),
    )


GOLDEN_SERVER = (
    "0ab8010a1c0a1a0a0c736572766963652e6e616d65120a0a08636865636b6f75741297010a0f0a0874726163656b6974"
    "1203312e301283010a100af7651916cd43dd8448eb211c80319c1208b7ad6b71692033312a09474554202f6361727430"
    "023900002a36fe9c97174160e34036fe9c97174a1c0a13687474702e726571756573742e6d6574686f6412050a034745"
    "544a200a19687474702e726573706f6e73652e7374617475735f636f6465120318c8017a00850101010000"
)


def golden_client_span() -> ReadableSpan:
    """Remote parent, trace state, an event, a link, an error, dropped counts, every kind of value."""
    attributes = BoundedAttributes(
        3, {"dropped": "first", "db.system": "postgresql", "retry": True, "rows": (1, -2)}
    )
    event_attributes = BoundedAttributes(1, {"dropped": 1, "exception.type": "TimeoutError"})
    events: BoundedList[Event] = BoundedList(1)
    events.extend(
        [Event("dropped", None, 9), Event("exception", event_attributes, 1_700_000_000_000_500_000)]
    )
    link_context = SpanContext(
        0x11111111111111111111111111111111,
        0x2222222222222222,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "abc")]),
    )
    return ReadableSpan(
        name="SELECT 😀",
        context=SpanContext(
            TRACE_ID,
            0x0102030405060708,
            is_remote=False,
            trace_flags=TraceFlags(3),
            trace_state=TraceState([("tk", "p:8")]),
        ),
        parent=SpanContext(TRACE_ID, 0xB7AD6B7169203331, is_remote=True),
        resource=Resource(
            {"service.name": "checkout", "ratio": 0.5}, "https://opentelemetry.io/schemas/1.21.0"
        ),
        attributes=attributes,
        events=events,
        links=[Link(link_context, {"link.kind": "retry"})],
        kind=SpanKind.CLIENT,
        status=Status(StatusCode.ERROR, "timeout"),
        start_time=1_700_000_000_000_000_000,
        end_time=1_700_000_000_002_000_000,
        instrumentation_scope=InstrumentationScope(
            "tracekit.db", "2.0", "https://opentelemetry.io/schemas/1.24.0", {"scope.attr": "s"}
        ),
    )


GOLDEN_CLIENT = (
    "0adb030a300a1a0a0c736572766963652e6e616d65120a0a08636865636b6f75740a120a05726174696f120921000000"
    "000000e03f12fd020a250a0b74726163656b69742e64621203322e301a110a0a73636f70652e6174747212030a017312"
    "aa020a100af7651916cd43dd8448eb211c80319c120801020304050607081a06746b3d703a382208b7ad6b7169203331"
    "2a0b53454c45435420f09f988030033900002a36fe9c97174180844836fe9c97174a190a0964622e73797374656d120c"
    "0a0a706f737467726573716c4a0b0a057265747279120210014a1b0a04726f777312132a110a0218010a0b18feffffff"
    "ffffffffff0150015a380920a13136fe9c97171209657863657074696f6e1a200a0e657863657074696f6e2e74797065"
    "120e0a0c54696d656f75744572726f72200160016a430a10111111111111111111111111111111111208222222222222"
    "22221a0a76656e646f723d61626322140a096c696e6b2e6b696e6412070a05726574727935010300007a0b120774696d"
    "656f757418028501030300001a2768747470733a2f2f6f70656e74656c656d657472792e696f2f736368656d61732f31"
    "2e32342e301a2768747470733a2f2f6f70656e74656c656d657472792e696f2f736368656d61732f312e32312e30"
)


def golden_grouped_spans() -> list[ReadableSpan]:
    """Two scopes (one absent) under one resource, then another resource: three spans, one request."""
    first = Resource({"service.name": "a"})
    second = Resource({"service.name": "b"})

    def span(span_id: int, resource: Resource, scope: InstrumentationScope | None) -> ReadableSpan:
        return ReadableSpan(
            name=f"s{span_id}",
            context=SpanContext(0xAB, span_id, is_remote=False),
            resource=resource,
            kind=SpanKind.INTERNAL,
            start_time=10,
            end_time=20,
            instrumentation_scope=scope,
        )

    scope = InstrumentationScope("lib")
    return [span(1, first, scope), span(2, second, None), span(3, first, None), span(4, first, scope)]


GOLDEN_GROUPED = (
    "0adf010a150a130a0c736572766963652e6e616d6512030a01611283010a050a036c6962123c0a100000000000000000"
    "00000000000000ab120800000000000000012a0273313001390a000000000000004114000000000000007a0085010001"
    "0000123c0a10000000000000000000000000000000ab120800000000000000042a0273343001390a0000000000000041"
    "14000000000000007a0085010001000012400a00123c0a10000000000000000000000000000000ab1208000000000000"
    "00032a0273333001390a000000000000004114000000000000007a008501000100000a590a150a130a0c736572766963"
    "652e6e616d6512030a016212400a00123c0a10000000000000000000000000000000ab120800000000000000022a0273"
    "323001390a000000000000004114000000000000007a00850100010000"
)


def test_golden_server_span() -> None:
    span = golden_server_span()
    (request,) = Encoder().encode([span])
    assert request.body.hex() == GOLDEN_SERVER
    assert request.spans == 1
    assert_same(checked(request.body, [span]), official([span]))

    message = ExportTraceServiceRequest.FromString(bytes.fromhex(GOLDEN_SERVER))
    (resource_spans,) = message.resource_spans
    assert attrs(resource_spans.resource.attributes) == [("service.name", ("string_value", "checkout"))]
    assert resource_spans.resource.dropped_attributes_count == 0
    assert resource_spans.schema_url == ""
    (scope_spans,) = resource_spans.scope_spans
    assert (scope_spans.scope.name, scope_spans.scope.version) == ("tracekit", "1.0")
    assert list(scope_spans.scope.attributes) == []
    assert scope_spans.schema_url == ""
    (pb_span,) = scope_spans.spans
    assert pb_span.trace_id == bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    assert pb_span.span_id == bytes.fromhex("b7ad6b7169203331")
    assert pb_span.trace_state == ""
    assert pb_span.parent_span_id == b""
    assert pb_span.name == "GET /cart"
    assert pb_span.kind == PBSpan.SPAN_KIND_SERVER
    assert pb_span.start_time_unix_nano == 1_700_000_000_000_000_000
    assert pb_span.end_time_unix_nano == 1_700_000_000_001_500_000
    assert attrs(pb_span.attributes) == [
        ("http.request.method", ("string_value", "GET")),
        ("http.response.status_code", ("int_value", 200)),
    ]
    assert pb_span.dropped_attributes_count == 0
    assert list(pb_span.events) == []
    assert pb_span.dropped_events_count == 0
    assert list(pb_span.links) == []
    assert pb_span.dropped_links_count == 0
    assert pb_span.HasField("status")
    assert (pb_span.status.code, pb_span.status.message) == (PBStatus.STATUS_CODE_UNSET, "")
    assert pb_span.flags == HAS_IS_REMOTE | 1  # local parent (none), sampled

    # Byte for byte what the official encoder writes, once its flags carry the trace flags.
    expected = encode_spans([span])
    expected.resource_spans[0].scope_spans[0].spans[0].flags |= 1
    assert request.body == expected.SerializeToString()


def test_golden_client_span() -> None:
    span = golden_client_span()
    (request,) = Encoder().encode([span])
    assert request.body.hex() == GOLDEN_CLIENT
    assert request.spans == 1
    assert_same(checked(request.body, [span]), official([span]))

    message = ExportTraceServiceRequest.FromString(bytes.fromhex(GOLDEN_CLIENT))
    (resource_spans,) = message.resource_spans
    assert attrs(resource_spans.resource.attributes) == [
        ("service.name", ("string_value", "checkout")),
        ("ratio", ("double_value", 0.5)),
    ]
    assert resource_spans.schema_url == "https://opentelemetry.io/schemas/1.21.0"
    (scope_spans,) = resource_spans.scope_spans
    assert (scope_spans.scope.name, scope_spans.scope.version) == ("tracekit.db", "2.0")
    assert attrs(scope_spans.scope.attributes) == [("scope.attr", ("string_value", "s"))]
    assert scope_spans.schema_url == "https://opentelemetry.io/schemas/1.24.0"
    (pb_span,) = scope_spans.spans
    assert pb_span.trace_id == bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    assert pb_span.span_id == bytes.fromhex("0102030405060708")
    assert pb_span.trace_state == "tk=p:8"
    assert pb_span.parent_span_id == bytes.fromhex("b7ad6b7169203331")
    assert pb_span.name == "SELECT 😀"
    assert pb_span.kind == PBSpan.SPAN_KIND_CLIENT
    assert pb_span.start_time_unix_nano == 1_700_000_000_000_000_000
    assert pb_span.end_time_unix_nano == 1_700_000_000_002_000_000
    assert attrs(pb_span.attributes) == [
        ("db.system", ("string_value", "postgresql")),
        ("retry", ("bool_value", True)),
        ("rows", ("array_value", (("int_value", 1), ("int_value", -2)))),
    ]
    assert pb_span.dropped_attributes_count == 1
    (event,) = pb_span.events
    assert (event.name, event.time_unix_nano) == ("exception", 1_700_000_000_000_500_000)
    assert attrs(event.attributes) == [("exception.type", ("string_value", "TimeoutError"))]
    assert event.dropped_attributes_count == 1
    assert pb_span.dropped_events_count == 1
    (link,) = pb_span.links
    assert link.trace_id == bytes.fromhex("11111111111111111111111111111111")
    assert link.span_id == bytes.fromhex("2222222222222222")
    assert link.trace_state == "vendor=abc"
    assert attrs(link.attributes) == [("link.kind", ("string_value", "retry"))]
    assert link.dropped_attributes_count == 0
    assert link.flags == HAS_IS_REMOTE | IS_REMOTE | 1
    assert pb_span.dropped_links_count == 0
    assert (pb_span.status.code, pb_span.status.message) == (PBStatus.STATUS_CODE_ERROR, "timeout")
    assert pb_span.flags == HAS_IS_REMOTE | IS_REMOTE | 3  # remote parent; sampled and random


def test_golden_grouping() -> None:
    spans = golden_grouped_spans()
    (request,) = Encoder().encode(spans)
    assert request.body.hex() == GOLDEN_GROUPED
    assert request.spans == 4
    assert_same(checked(request.body, spans), official(spans))

    message = ExportTraceServiceRequest.FromString(bytes.fromhex(GOLDEN_GROUPED))
    layout = [
        (
            attrs(rs.resource.attributes),
            [
                (ss.scope.name, ss.HasField("scope"), [span.name for span in ss.spans])
                for ss in rs.scope_spans
            ],
        )
        for rs in message.resource_spans
    ]
    assert layout == [
        ([("service.name", ("string_value", "a"))], [("lib", True, ["s1", "s4"]), ("", True, ["s3"])]),
        ([("service.name", ("string_value", "b"))], [("", True, ["s2"])]),
    ]
    for pb_span in flat(message):
        assert pb_span.trace_id == (0xAB).to_bytes(16, "big")
        assert pb_span.kind == PBSpan.SPAN_KIND_INTERNAL
        assert (pb_span.start_time_unix_nano, pb_span.end_time_unix_nano) == (10, 20)
        assert pb_span.flags == HAS_IS_REMOTE  # not sampled, no parent
        assert pb_span.HasField("status")
        assert pb_span.status.code == PBStatus.STATUS_CODE_UNSET


# --------------------------------------------------------------------------- 4. split


def test_a_large_batch_is_split_within_the_limit() -> None:
    limit = 65536
    resources = [Resource({"service.name": f"svc-{n}", "deployment.environment": "test"}) for n in range(3)]
    scopes = [
        InstrumentationScope("lib.a", "1.0"),
        InstrumentationScope("lib.b", None, "https://opentelemetry.io/schemas/1.21.0"),
        None,
    ]
    spans = []
    for i in range(1000):
        # ~2 KB: eight distinct values of 250 characters (cached, and more of them than the
        # cache holds), and a few that repeat from span to span.
        attributes = {f"attr.{k}": f"{i:04d}-{k}-".ljust(250, "v") for k in range(8)}
        attributes.update({"http.request.method": "GET", "index": i, "ok": i % 2 == 0})
        spans.append(
            ReadableSpan(
                name=f"span {i}",
                context=SpanContext(TRACE_ID, i + 1, is_remote=False, trace_flags=TraceFlags(1)),
                resource=resources[(i // 150) % 3],
                attributes=BoundedAttributes(None, attributes, immutable=True),
                instrumentation_scope=scopes[(i // 40) % 3],
                start_time=1_000 + i,
                end_time=2_000 + i,
            )
        )
    encoder = Encoder(limit)
    requests = encoder.encode(spans)
    assert (encoder.truncated, encoder.unfit) == (0, 0)

    (whole,) = Encoder(NO_LIMIT).encode(spans)
    assert len(requests) >= -(-len(whole.body) // limit) > 1
    originals = {span.context.span_id: span for span in spans}
    order: list[int] = []
    resources_per_request = []
    for index, request in enumerate(requests):
        assert len(request.body) <= limit
        if index < len(requests) - 1:  # filled greedily: no room left for another ~2.2 KB span
            assert len(request.body) > limit - 5000
        message = ExportTraceServiceRequest.FromString(request.body)
        carried = [int.from_bytes(span.span_id, "big") for span in flat(message)]
        assert len(carried) == request.spans
        order += carried
        # Grouping within the request is exactly the official encoder's for these spans.
        assert_same(
            checked(request.body, [originals[i] for i in carried]), official([originals[i] for i in carried])
        )
        resources_per_request.append(
            [rs.resource.attributes[0].value.string_value for rs in message.resource_spans]
        )

    assert sum(request.spans for request in requests) == 1000
    assert order == [span.context.span_id for span in grouped(spans)]  # each once, in order
    assert any(len(names) > 1 for names in resources_per_request)  # a request with several resources
    assert all(
        sum(name == f"svc-{n}" for names in resources_per_request for name in names) > 1 for n in range(3)
    )


@st.composite
def small_batches(draw: st.DrawFn) -> list[ReadableSpan]:
    resources = [Resource({"r": index}) for index in range(draw(st.integers(1, 3)))]
    scopes = [None, InstrumentationScope("a"), InstrumentationScope("b", "1")]
    spans = []
    for span_id in range(1, draw(st.integers(1, 40)) + 1):
        attributes = draw(
            st.dictionaries(st.text(_CHARS, min_size=1, max_size=5), texts | int64s, max_size=6)
        )
        if draw(st.booleans()):
            attributes["padding"] = "p" * draw(st.integers(0, 400))
        spans.append(
            simple_span(
                span_id,
                attributes,
                resource=draw(st.sampled_from(resources)),
                scope=draw(st.sampled_from(scopes)),
            )
        )
    return spans


@given(spans=small_batches(), limit=st.integers(1_000, 6_000))
@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
def test_split_keeps_every_span_once_and_in_order(spans: list[ReadableSpan], limit: int) -> None:
    encoder = Encoder(limit)
    requests = encoder.encode(spans)
    assert (encoder.truncated, encoder.unfit) == (0, 0)
    originals = {span.context.span_id: span for span in spans}
    order = []
    for request in requests:
        assert len(request.body) <= limit
        carried = [
            int.from_bytes(span.span_id, "big")
            for span in flat(ExportTraceServiceRequest.FromString(request.body))
        ]
        assert len(carried) == request.spans > 0
        order += carried
        subset = [originals[i] for i in carried]
        assert_same(checked(request.body, subset), official(subset))
    assert order == [span.context.span_id for span in grouped(spans)]


def test_nothing_to_encode() -> None:
    assert Encoder().encode([]) == []
    assert Encoder().max_request_bytes == DEFAULT_MAX_REQUEST_BYTES == 4 * MIB


# --------------------------------------------------------------------------- 5. truncation


def _cut_value(decoded: str, original: str) -> None:
    """A cut value: valid, a strict prefix of the original, at a character boundary."""
    assert 0 < len(decoded) < len(original)
    assert original.startswith(decoded)


def test_an_outsized_span_attribute_is_cut() -> None:
    limit = 4 * MIB
    original = "x" * 10_000_000
    small = {"http.route": "/upload", "size": 10_000_000, "ok": True}
    before, after = simple_span(1, {"n": 1}), simple_span(3, {"n": 3})
    big = simple_span(2, {**small, "payload": original, "tail": "t"})
    encoder = Encoder(limit)
    requests = encoder.encode([before, big, after])

    assert (encoder.truncated, encoder.unfit) == (1, 0)
    assert all(len(request.body) <= limit for request in requests)
    found = by_span_id(requests)
    assert sorted(found) == [1, 2, 3]
    for neighbour in (before, after):
        assert normalized(found[neighbour.context.span_id][0], neighbour) == official_span(neighbour)
    pb_span = found[2][0]
    values = dict(attrs(pb_span.attributes))
    assert list(values) == [*small, "payload", "tail", TRUNCATED]
    assert values[TRUNCATED] == ("int_value", 1)
    assert [values[key] for key in small] == [
        ("string_value", "/upload"),
        ("int_value", 10_000_000),
        ("bool_value", True),
    ]
    assert values["tail"] == ("string_value", "t")
    kind, cut = values["payload"]
    assert kind == "string_value"
    _cut_value(cut, original)
    assert len(cut) > limit - 1024  # cut no more than needed


def test_an_outsized_span_is_cut_not_dropped() -> None:
    """The shortest form of the above (at 731f85e the cut attributes were ignored, so the span
    was dropped as unfit; a cut event value left out ``tracekit.truncated``)."""
    encoder = Encoder(4 * MIB)
    encoder.encode([simple_span(2, {"payload": "x" * 10_000_000})])
    assert (encoder.truncated, encoder.unfit) == (1, 0)


def _stacktrace_span(span_id: int, stacktrace: str) -> ReadableSpan:
    event = Event(
        "exception",
        BoundedAttributes(
            None,
            {
                "exception.type": "RecursionError",
                "exception.stacktrace": stacktrace,
                "exception.escaped": False,
            },
        ),
        1_700_000_000_000_000_500,
    )
    return simple_span(span_id, {"http.route": "/deep", "retries": 2}, [event, Event("after", {"n": 1}, 7)])


def test_an_outsized_event_attribute_is_cut() -> None:
    limit = 4 * MIB
    original = "Traceback (most recent call last):\n" + '  File "app.py", line 1, in f\n' * 170_000
    assert len(original) > 5_000_000
    before, after = simple_span(1, {"n": 1}), simple_span(3, {"n": 3})
    span = _stacktrace_span(2, original)
    encoder = Encoder(limit)
    requests = encoder.encode([before, span, after])

    assert (encoder.truncated, encoder.unfit) == (1, 0)
    assert all(len(request.body) <= limit for request in requests)
    found = by_span_id(requests)
    assert sorted(found) == [1, 2, 3]
    for neighbour in (before, after):
        assert normalized(found[neighbour.context.span_id][0], neighbour) == official_span(neighbour)

    pb_span = normalized(found[2][0], span)
    expected = official_span(span)
    # Span attributes untouched (tracekit.truncated is checked on its own, below).
    assert [pair for pair in attrs(pb_span.attributes) if pair[0] != TRUNCATED] == attrs(expected.attributes)
    exception, after_event = pb_span.events
    assert after_event == expected.events[1]
    values = dict(attrs(exception.attributes))
    assert list(values) == ["exception.type", "exception.stacktrace", "exception.escaped"]
    assert values["exception.type"] == ("string_value", "RecursionError")
    assert values["exception.escaped"] == ("bool_value", False)
    kind, cut = values["exception.stacktrace"]
    assert kind == "string_value"
    _cut_value(cut, original)
    assert len(cut) > limit - 1024
    # Everything else is the official encoding.
    for message in (pb_span, expected):
        del message.attributes[:]
        del message.events[0].attributes[:]
    assert pb_span == expected


def test_a_span_with_a_cut_event_attribute_says_so() -> None:
    span = _stacktrace_span(2, "frame\n" * 1_000_000)
    (request,) = Encoder(4 * MIB).encode([span])
    (pb_span,) = flat(ExportTraceServiceRequest.FromString(request.body))
    assert attrs(pb_span.attributes)[-1] == (TRUNCATED, ("int_value", 1))


@pytest.mark.parametrize(
    "where",
    ["event", "span"],
)
def test_multibyte_values_are_cut_at_a_character_boundary(where: str) -> None:
    original = "aé中😀" * 20_000  # 1, 2, 3 and 4 bytes: 200 KB
    lengths = set()
    for limit in range(65_536, 65_546):  # ten limits: the cut falls at every offset in a character
        if where == "event":
            span = simple_span(2, {"n": 1}, [Event("log", {"message": original, "level": "info"}, 5)])
        else:
            span = simple_span(2, {"message": original, "level": "info"})
        encoder = Encoder(limit)
        (request,) = encoder.encode([span])
        assert len(request.body) <= limit
        assert (encoder.truncated, encoder.unfit) == (1, 0)
        (pb_span,) = flat(ExportTraceServiceRequest.FromString(request.body))  # valid UTF-8, or this raises
        values = dict(attrs(pb_span.events[0].attributes if where == "event" else pb_span.attributes))
        assert values["level"] == ("string_value", "info")
        kind, cut = values["message"]
        assert kind == "string_value"
        _cut_value(cut, original)
        assert len(cut.encode()) > limit - 512  # cut no more than needed
        lengths.add(len(cut.encode()) % 10)
    assert len(lengths) > 1  # the cuts did end in different characters


def test_a_span_that_cannot_fit_is_dropped_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    limit = 4 * MIB
    # ~6 MB of pairs and no string long enough to cut: nothing can make it fit.
    huge = simple_span(2, {f"attribute.number.{n:06d}": n for n in range(200_000)}, name="huge")
    before, after = simple_span(1, {"n": 1}), simple_span(3, {"n": 3})
    encoder = Encoder(limit)
    with caplog.at_level(logging.WARNING, logger="tracekit"):
        requests = encoder.encode([before, huge, after])
        encoder.encode([huge])  # warned once
    assert (encoder.truncated, encoder.unfit) == (0, 2)
    assert_matches_official(requests, [before, after])
    assert [(record.name, record.levelno) for record in caplog.records] == [("tracekit", logging.WARNING)]
    assert caplog.records[0].getMessage() == (
        "tracekit: span 'huge' does not fit in an export request of 4194304 bytes even with its values "
        "cut (too many attributes, events or links); it is not exported"
    )


# --------------------------------------------------------------------------- 6, 7. odd values


def test_lone_surrogates_are_replaced() -> None:
    assert "\ud800".encode("utf-8", "replace") == b"?"
    before, after = simple_span(1, {"n": 1}), simple_span(3, {"n": 3})
    span = simple_span(
        2,
        {"fine": "ok", "bad": "x\udfffy", "bad.key.\ud83d": "v", "list": ("\ud800", "ok")},
        [Event("event \udc00", {"bad": "\ud800\udc00"}, 5)],  # a surrogate pair, not a character
        name="name \ud800 here",
    )
    encoder = Encoder()
    requests = encoder.encode([before, span, after])
    assert len(requests) == 1
    found = by_span_id(requests)
    for neighbour in (before, after):
        assert normalized(found[neighbour.context.span_id][0], neighbour) == official_span(neighbour)
    pb_span = found[2][0]
    assert pb_span.name == "name ? here"
    assert attrs(pb_span.attributes) == [
        ("fine", ("string_value", "ok")),
        ("bad", ("string_value", "x?y")),
        ("bad.key.?", ("string_value", "v")),
        ("list", ("array_value", (("string_value", "?"), ("string_value", "ok")))),
    ]
    (event,) = pb_span.events
    assert event.name == "event ?"
    assert attrs(event.attributes) == [("bad", ("string_value", "??"))]


def test_an_unsupported_value_is_left_out_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    class Opaque:
        pass

    span = simple_span(2, {"before": 1, "opaque": Opaque(), "after": "x"})
    neighbour = simple_span(3, {"n": 3})
    with caplog.at_level(logging.WARNING, logger="tracekit"):
        requests = Encoder().encode([span, neighbour, span])
    assert [(record.name, record.getMessage()) for record in caplog.records] == [
        (
            "tracekit",
            "tracekit: attribute 'opaque' has a value OTLP cannot carry (Opaque); it is left out of the span",
        )
    ]
    (request,) = requests
    assert request.spans == 3
    spans = flat(ExportTraceServiceRequest.FromString(request.body))
    assert [attrs(pb_span.attributes) for pb_span in spans] == [
        [("before", ("int_value", 1)), ("after", ("string_value", "x"))],
        [("n", ("int_value", 3))],
        [("before", ("int_value", 1)), ("after", ("string_value", "x"))],
    ]
    # The official encoder leaves it out too.
    with caplog.at_level(logging.CRITICAL):
        assert_same(checked(request.body, [span, neighbour, span]), official([span, neighbour, span]))


def test_out_of_range_int_in_a_map(caplog: pytest.LogCaptureFixture) -> None:
    """Inside a map only the pair that cannot be carried is left out (the official encoder
    drops the whole attribute): a difference from the official encoder, pinned here."""
    span = simple_span(2, {"map": {"a": 1, "huge": 2**64, "b": "x"}, "n": 2})
    with caplog.at_level(logging.WARNING, logger="tracekit"):
        (request,) = Encoder().encode([span])
    (pb_span,) = flat(ExportTraceServiceRequest.FromString(request.body))
    assert attrs(pb_span.attributes) == [
        ("map", ("kvlist_value", [("a", ("int_value", 1)), ("b", ("string_value", "x"))])),
        ("n", ("int_value", 2)),
    ]
    assert [record.getMessage() for record in caplog.records] == [
        "tracekit: attribute 'huge' has a value OTLP cannot carry (int); it is left out of the span"
    ]


# --------------------------------------------------------------------------- caches


def test_scope_cache_tells_equal_values_apart() -> None:
    """Equal scopes can differ ({'a': 1} == {'a': True} == {'a': 1.0}): until 17e0fba the scope
    cache, keyed by equality, gave the later ones the encoding of the first."""
    encoder = Encoder()
    for attribute in (1, True, 1.0):
        scope = InstrumentationScope("lib", "1", None, {"a": attribute})
        span = simple_span(2, scope=scope)
        assert_matches_official(encoder.encode([span]), [span])


def test_caches_follow_changed_resources_and_statuses() -> None:
    encoder = Encoder()
    resource = Resource({"service.name": "before"})
    status = Status(StatusCode.ERROR, "first")
    span = ReadableSpan("s", SpanContext(1, 2, is_remote=False), resource=resource, status=status)
    assert_matches_official(encoder.encode([span]), [span])
    # A forked child gives the shared resource new attributes in place (tracekit._compat).
    resource._attributes = Resource({"service.name": "after"})._attributes
    other = ReadableSpan(
        "t", SpanContext(1, 3, is_remote=False), resource=resource, status=Status(StatusCode.OK)
    )
    requests = encoder.encode([other, span])
    assert_matches_official(requests, [other, span])
    message = ExportTraceServiceRequest.FromString(requests[0].body)
    assert attrs(message.resource_spans[0].resource.attributes) == [
        ("service.name", ("string_value", "after"))
    ]
