"""Context propagation: every OTEL_PROPAGATORS name, composites, exact headers, malformed input.

The malformed-header properties compare what each propagator extracts with a reference reading
of the format written here from its specification (W3C Trace Context, B3, Jaeger, W3C
Baggage): a header the reference rejects must leave the context as it was, and a header it
accepts must give exactly its ids and sampled flag.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import string
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

import tracekit
from tracekit._propagation import make_propagator

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7
TRACE_HEX = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_HEX = "00f067aa0ba902b7"

NAMES = ("tracecontext", "baggage", "b3", "b3multi", "jaeger")
TRACE_NAMES = ("tracecontext", "b3", "b3multi", "jaeger")

#: A valid context from some earlier propagator; a rejected header must leave it in place.
SENTINEL = NonRecordingSpan(
    SpanContext(0x11111111111111111111111111111111, 0x2222222222222222, True, TraceFlags(1))
)

FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])


@pytest.fixture(autouse=True)
def _quiet_propagator_warnings() -> Iterator[None]:
    """The official propagators log each malformed header they drop: thousands here."""
    loggers = [
        logging.getLogger(name) for name in ("opentelemetry.baggage.propagation", "opentelemetry.trace.span")
    ]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def _context(
    trace_id: int = TRACE_ID,
    span_id: int = SPAN_ID,
    sampled: bool = True,
    trace_state: TraceState | None = None,
    entries: dict[str, str] | None = None,
) -> Context:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    span = NonRecordingSpan(SpanContext(trace_id, span_id, True, flags, trace_state))
    ctx = trace.set_span_in_context(span, Context())
    for key, value in (entries or {}).items():
        ctx = baggage.set_baggage(key, value, ctx)
    return ctx


def _ids(ctx: Context) -> tuple[int, int, bool] | None:
    span_context = trace.get_current_span(ctx).get_span_context()
    if not span_context.is_valid:
        return None
    assert span_context.is_remote
    return span_context.trace_id, span_context.span_id, span_context.trace_flags.sampled


def _inject(names: tuple[str, ...] | list[str], ctx: Context) -> dict[str, str]:
    carrier: dict[str, str] = {}
    make_propagator(names).inject(carrier, ctx)
    return carrier


# --------------------------------------------------------------------------- exact headers


@pytest.mark.parametrize(
    ("name", "sampled", "headers"),
    [
        (
            "tracecontext",
            True,
            {
                "traceparent": f"00-{TRACE_HEX}-{SPAN_HEX}-01",
                "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
            },
        ),
        (
            "tracecontext",
            False,
            {
                "traceparent": f"00-{TRACE_HEX}-{SPAN_HEX}-00",
                "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
            },
        ),
        ("baggage", True, {"baggage": "user=alice,tenant=a%2Cb%3Bc%3Dd"}),
        ("b3", True, {"b3": f"{TRACE_HEX}-{SPAN_HEX}-1"}),
        ("b3", False, {"b3": f"{TRACE_HEX}-{SPAN_HEX}-0"}),
        ("b3multi", True, {"x-b3-traceid": TRACE_HEX, "x-b3-spanid": SPAN_HEX, "x-b3-sampled": "1"}),
        ("b3multi", False, {"x-b3-traceid": TRACE_HEX, "x-b3-spanid": SPAN_HEX, "x-b3-sampled": "0"}),
        (
            "jaeger",
            True,
            {
                "uber-trace-id": f"{TRACE_HEX}:{SPAN_HEX}:0000000000000000:01",
                "uberctx-user": "alice",
                "uberctx-tenant": "a%2Cb%3Bc%3Dd",
            },
        ),
        (
            "jaeger",
            False,
            {
                "uber-trace-id": f"{TRACE_HEX}:{SPAN_HEX}:0000000000000000:00",
                "uberctx-user": "alice",
                "uberctx-tenant": "a%2Cb%3Bc%3Dd",
            },
        ),
    ],
)
def test_exact_headers_for_a_known_context(name: str, sampled: bool, headers: dict[str, str]) -> None:
    state = TraceState([("congo", "t61rcWkgMzE"), ("rojo", "00f067aa0ba902b7")])
    ctx = _context(sampled=sampled, trace_state=state, entries={"user": "alice", "tenant": "a,b;c=d"})
    assert _inject([name], ctx) == headers


def test_jaeger_sends_only_the_sampled_bit_of_the_trace_flags() -> None:
    # W3C Level 2 "random" (0x02) means "debug" in the Jaeger bitmap: it must not leak there.
    span = NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, True, TraceFlags(0x02)))
    headers = _inject(["jaeger"], trace.set_span_in_context(span, Context()))
    assert headers == {"uber-trace-id": f"{TRACE_HEX}:{SPAN_HEX}:0000000000000000:00"}


def test_baggage_space_is_percent_encoded() -> None:
    assert _inject(["baggage"], _context(entries={"user": "alice smith"})) == {
        "baggage": "user=alice%20smith"
    }


def test_baggage_plus_is_a_literal_plus() -> None:
    ctx = make_propagator(["baggage"]).extract({"baggage": "formula=a+b"}, Context())
    assert baggage.get_all(ctx) == {"formula": "a+b"}


def test_baggage_properties_are_not_part_of_the_value() -> None:
    ctx = make_propagator(["baggage"]).extract({"baggage": "user=alice;sensitive"}, Context())
    assert baggage.get_all(ctx) == {"user": "alice"}


def test_baggage_keys_are_tokens_never_decoded_to_nothing() -> None:
    ctx = make_propagator(["baggage"]).extract({"baggage": "%20=x"}, Context())
    assert baggage.get_all(ctx) == {"%20": "x"}


def test_baggage_plus_is_sent_percent_encoded() -> None:
    assert _inject(["baggage"], _context(entries={"formula": "a+b", "q": "x=1;y"})) == {
        "baggage": "formula=a%2Bb,q=x%3D1%3By"
    }


def test_baggage_whitespace_properties_and_several_fields() -> None:
    header = " user = alice ; sensitive ; ttl=3 ,\tbad key=1, tenant=a%2Cb, =empty, novalue, plain="
    ctx = make_propagator(["baggage"]).extract({"baggage": [header, "second=2"]}, Context())
    assert baggage.get_all(ctx) == {"user": "alice", "tenant": "a,b", "plain": "", "second": "2"}


def test_baggage_keys_that_are_not_tokens_are_left_out_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    context = _context(entries={"user id": "7", "tenant": "acme"})
    assert _inject(["baggage"], context) == {"baggage": "tenant=acme"}
    assert _inject(["baggage"], context) == {"baggage": "tenant=acme"}
    warnings = [r.getMessage() for r in caplog.records if r.name == "tracekit"]
    assert warnings == [
        "tracekit: baggage key 'user id' is not a token (RFC 7230) and cannot be sent; it is left out"
    ]


def test_baggage_limits_of_the_specification(caplog: pytest.LogCaptureFixture) -> None:
    many = {f"k{i}": "v" for i in range(200)}
    sent = _inject(["baggage"], _context(entries=many))["baggage"]
    assert sent == ",".join(f"k{i}=v" for i in range(180))
    long = _inject(["baggage"], _context(entries={"a": "x" * 5000, "b": "y" * 5000}))["baggage"]
    assert long == "a=" + "x" * 5000
    assert len([r for r in caplog.records if "past the limit" in r.getMessage()]) == 1
    received = make_propagator(["baggage"]).extract(
        {"baggage": ",".join(f"k{i}=v" for i in range(200))}, Context()
    )
    assert list(baggage.get_all(received)) == [f"k{i}" for i in range(180)]


def test_a_received_baggage_entry_over_the_limit_is_left_out_whole(caplog: pytest.LogCaptureFixture) -> None:
    header = ",".join(["before=1", "huge=" + "x" * 65536, "after=2", "last=" + "y" * 8180])
    received = make_propagator(["baggage"]).extract({"baggage": header}, Context())
    # Never cut to fit: the 64 KB entry and the one that would pass 8192 characters are left out.
    assert dict(baggage.get_all(received)) == {"before": "1", "after": "2"}
    warnings = [r.getMessage() for r in caplog.records if r.name == "tracekit"]
    assert warnings == [
        "tracekit: a received baggage header is over 8192 characters; 2 entries that did not fit "
        "were left out whole (the others are kept)"
    ]
    exact = "k=" + "v" * 8190  # exactly 8192 characters: kept
    assert dict(baggage.get_all(make_propagator(["baggage"]).extract({"baggage": exact}, Context()))) == {
        "k": "v" * 8190
    }


def test_none_injects_and_extracts_nothing() -> None:
    propagator = make_propagator(["none"])
    assert _inject(["none"], _context(entries={"user": "alice"})) == {}
    carrier = {"traceparent": f"00-{TRACE_HEX}-{SPAN_HEX}-01", "baggage": "user=alice"}
    base = trace.set_span_in_context(SENTINEL, Context())
    assert propagator.extract(carrier, base) is base
    assert propagator.fields == set()


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("tracecontext", {"traceparent", "tracestate"}),
        ("baggage", {"baggage"}),
        ("b3", {"b3"}),
        ("b3multi", {"x-b3-traceid", "x-b3-spanid", "x-b3-sampled"}),
        ("jaeger", {"uber-trace-id"}),
    ],
)
def test_fields(name: str, fields: set[str]) -> None:
    assert make_propagator([name]).fields == fields


# --------------------------------------------------------------------------- round trips

ids = st.tuples(st.integers(1, 2**128 - 1), st.integers(1, 2**64 - 1), st.booleans())
_TOKEN = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"  # RFC 9110 tchar
baggage_entries = st.dictionaries(
    st.text(_TOKEN, min_size=1, max_size=12),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=20).map(str.strip),
    max_size=5,
)


@pytest.mark.parametrize("name", TRACE_NAMES)
@given(trace_ids=ids)
@settings(max_examples=200, deadline=None)
def test_round_trip_of_the_span_context(name: str, trace_ids: tuple[int, int, bool]) -> None:
    trace_id, span_id, sampled = trace_ids
    carrier = _inject([name], _context(trace_id, span_id, sampled))
    base = trace.set_span_in_context(SENTINEL, Context())
    assert _ids(make_propagator([name]).extract(carrier, base)) == (trace_id, span_id, sampled)


@pytest.mark.parametrize("name", ["baggage", "jaeger"])
@given(entries=baggage_entries)
@settings(max_examples=200, deadline=None)
def test_round_trip_of_baggage(name: str, entries: dict[str, str]) -> None:
    carrier = _inject([name], _context(entries=entries))
    if name == "jaeger":
        assert {k for k in carrier if k.startswith("uberctx-")} == {f"uberctx-{k}" for k in entries}
    extracted = make_propagator([name]).extract(carrier, Context())
    assert dict(baggage.get_all(extracted)) == entries


def test_round_trip_of_the_trace_state() -> None:
    state = TraceState([("congo", "t61rcWkgMzE"), ("rojo", "00f067aa0ba902b7")])
    carrier = _inject(["tracecontext"], _context(trace_state=state))
    extracted = make_propagator(["tracecontext"]).extract(carrier, Context())
    assert trace.get_current_span(extracted).get_span_context().trace_state == state


def test_composite_round_trip_carries_every_format() -> None:
    names = ["tracecontext", "baggage", "b3", "b3multi", "jaeger"]
    carrier = _inject(names, _context(entries={"user": "alice"}))
    assert set(carrier) == {
        "traceparent",
        "baggage",
        "b3",
        "x-b3-traceid",
        "x-b3-spanid",
        "x-b3-sampled",
        "uber-trace-id",
        "uberctx-user",
    }
    extracted = make_propagator(names).extract(carrier, Context())
    assert _ids(extracted) == (TRACE_ID, SPAN_ID, True)
    assert baggage.get_all(extracted) == {"user": "alice"}


def _other_context_headers(name: str) -> dict[str, str]:
    """``name``'s headers for trace 0xabc.../span 0xdef..., unsampled."""
    return _inject([name], _context(int("ab" * 16, 16), int("de" * 8, 16), sampled=False))


# b3 and b3multi both read the single and the multi headers, so they are not paired
_PAIRS = [
    (first, second)
    for first, second in itertools.permutations(TRACE_NAMES, 2)
    if {first, second} != {"b3", "b3multi"}
]


@pytest.mark.parametrize(("first", "second"), _PAIRS)
def test_composite_extraction_order_is_respected_the_last_format_wins(first: str, second: str) -> None:
    carrier = {**_inject([first], _context()), **_other_context_headers(second)}
    assert _ids(make_propagator([first, second]).extract(carrier, Context())) == (
        int("ab" * 16, 16),
        int("de" * 8, 16),
        False,
    )
    assert _ids(make_propagator([second, first]).extract(carrier, Context())) == (TRACE_ID, SPAN_ID, True)


@pytest.mark.parametrize(
    ("name", "headers"),
    [
        ("b3", {"b3": "00000000000000000000000000000000-00f067aa0ba902b7-1"}),
        ("b3multi", {"x-b3-traceid": TRACE_HEX, "x-b3-spanid": "0000000000000000", "x-b3-sampled": "1"}),
        ("jaeger", {"uber-trace-id": "-1:1:0:1"}),
        ("jaeger", {"uber-trace-id": "1" * 33 + ":1:0:1"}),
    ],
)
def test_an_unparseable_later_format_keeps_the_earlier_context(name: str, headers: dict[str, str]) -> None:
    carrier = {"traceparent": f"00-{TRACE_HEX}-{SPAN_HEX}-01", **headers}
    assert _ids(make_propagator(["tracecontext", name]).extract(carrier, Context())) == (
        TRACE_ID,
        SPAN_ID,
        True,
    )


@pytest.mark.parametrize(
    "header",
    ["0x1f:2:0:1", "1_f:2:0:1", "+1f:2:0:1", "1f:2:0:-1", "\u0661:2:0:1", "1f%3A2%3A0%3A1", "1f :2:0:1"],
)
def test_jaeger_ids_must_be_plain_hex(header: str) -> None:
    assert _ids(make_propagator(["jaeger"]).extract({"uber-trace-id": header}, Context())) is None


@pytest.mark.parametrize("name", ["b3", "b3multi"])
def test_b3_ids_must_be_ascii_hex(name: str) -> None:
    arabic_ones = "\u0661" * 16
    headers = (
        {"b3": f"{arabic_ones}-{SPAN_HEX}-1"}
        if name == "b3"
        else {"x-b3-traceid": arabic_ones, "x-b3-spanid": SPAN_HEX, "x-b3-sampled": "1"}
    )
    assert _ids(make_propagator([name]).extract(headers, Context())) is None


def test_configure_installs_the_propagators_in_order() -> None:
    from opentelemetry import propagate

    tracekit.configure(exporters=[], propagators=["jaeger", "b3multi", "tracecontext", "baggage"])
    carrier: dict[str, str] = {}
    propagate.inject(carrier, _context(entries={"user": "alice"}))
    assert list(carrier) == [
        "uber-trace-id",
        "uberctx-user",
        "x-b3-traceid",
        "x-b3-spanid",
        "x-b3-sampled",
        "traceparent",
        "baggage",
    ]
    extracted = propagate.extract(carrier)
    assert _ids(extracted) == (TRACE_ID, SPAN_ID, True)
    assert baggage.get_all(extracted) == {"user": "alice"}


PROPAGATOR_SETS = [
    ["tracecontext", "baggage"],
    ["baggage", "tracecontext"],
    ["tracecontext"],
    ["baggage"],
    ["none"],
    ["tracecontext", "b3"],
    ["b3multi", "baggage"],
]


@pytest.mark.parametrize("names", PROPAGATOR_SETS, ids=["+".join(n) for n in PROPAGATOR_SETS])
@pytest.mark.parametrize("state", ["", "vendor=value"])
@pytest.mark.parametrize("entries", [{}, {"user": "alice"}])
def test_span_injector_sends_what_propagate_inject_sends(
    names: list[str], state: str, entries: dict[str, str]
) -> None:
    from opentelemetry import propagate

    from tracekit._propagation import span_injector

    tracekit.configure(exporters=[], propagators=names)
    parent = _context(entries=entries)
    # The span is a child of the span in ``parent``: the injected ids must be the child's.
    span = NonRecordingSpan(
        SpanContext(TRACE_ID, 0x0123456789ABCDEF, False, TraceFlags(1), TraceState.from_header([state]))
    )
    expected: dict[str, str] = {}
    propagate.inject(expected, trace.set_span_in_context(span, parent))
    carrier: dict[str, str] = {}
    span_injector()(carrier, span, parent)
    assert carrier == expected
    assert bool(expected) == (names != ["none"] and (names != ["baggage"] or bool(entries)))
    assert SPAN_HEX not in str(expected)


def test_span_injector_follows_a_global_propagator_set_after_configure() -> None:
    from opentelemetry import propagate

    from tracekit._propagation import span_injector

    tracekit.configure(exporters=[])
    inject = span_injector()
    propagate.set_global_textmap(make_propagator(["b3"]))
    carrier: dict[str, str] = {}
    inject(carrier, NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, False, TraceFlags(1))), Context())
    assert carrier == {"b3": f"{TRACE_HEX}-{SPAN_HEX}-1"}


# --------------------------------------------------------------------------- reference readings


def _hex(text: str, lowercase_only: bool = False) -> bool:
    digits = "0123456789abcdef" if lowercase_only else "0123456789abcdefABCDEF"
    return text != "" and all(c in digits for c in text)


def _traceparent(value: str) -> tuple[int, int, bool] | None:
    """W3C Trace Context ``traceparent``: version-traceid-parentid-flags, lowercase hex.

    Also tolerated, as by the official propagator, with the ids still read exactly:
    spaces and tabs around the value, and one final newline.
    """
    if len(value) > 512:
        return None
    if value.endswith("\n"):
        value = value[:-1]
    value = value.lstrip(" \t")
    if len(value) < 55 or "\n" in value:
        return None
    version, trace_id, span_id, flags, rest = value[:2], value[3:35], value[36:52], value[53:55], value[55:]
    if (value[2], value[35], value[52]) != ("-", "-", "-"):
        return None
    if not all(_hex(part, lowercase_only=True) for part in (version, trace_id, span_id, flags)):
        return None
    if version == "ff" or int(trace_id, 16) == 0 or int(span_id, 16) == 0:
        return None
    if rest.strip(" \t") and (version == "00" or not rest.startswith("-")):
        # version 00 is exactly 55 characters; later versions may add "-..." fields
        return None
    return int(trace_id, 16), int(span_id, 16), bool(int(flags, 16) & 0x01)


_B3_SAMPLED = {"1", "d", "true", "True"}


def _b3_ids(trace_id: str, span_id: str) -> tuple[int, int] | None:
    """B3 ids: trace id of 16 or 32 hex digits, span id of 16, neither zero.

    The official propagator accepts upper-case hex too; the ids read are the same.
    """
    if not (trace_id.isascii() and span_id.isascii()):
        return None
    if len(trace_id) not in (16, 32) or not _hex(trace_id) or len(span_id) != 16 or not _hex(span_id):
        return None
    if int(trace_id, 16) == 0 or int(span_id, 16) == 0:
        return None
    return int(trace_id, 16), int(span_id, 16)


def _b3_single(value: str) -> tuple[int, int, bool] | None:
    """``b3: {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]``.

    A missing sampling state is "deferred", which the official propagator reads as sampled;
    an unknown sampling state reads as not sampled; the parent span id is not looked at.
    """
    if not value.isascii():
        return None
    fields = value.split("-", 4)
    if len(fields) not in (2, 3, 4):
        return None
    found = _b3_ids(fields[0], fields[1])
    if found is None:
        return None
    state = fields[2] if len(fields) > 2 else "1"
    return found[0], found[1], state in _B3_SAMPLED


def _b3_multi(headers: dict[str, str]) -> tuple[int, int, bool] | None:
    """``X-B3-TraceId``, ``X-B3-SpanId``, ``X-B3-Sampled``, ``X-B3-Flags: 1`` (debug, sampled).

    A missing X-B3-Sampled reads as not sampled in the official multi-header propagator.
    """
    found = _b3_ids(headers.get("x-b3-traceid", ""), headers.get("x-b3-spanid", ""))
    if found is None:
        return None
    sampled = headers.get("x-b3-sampled") or "0"
    return found[0], found[1], sampled in _B3_SAMPLED or headers.get("x-b3-flags") == "1"


def _uber_trace_id(value: str) -> tuple[int, int, bool] | None:
    """Jaeger ``{trace-id}:{span-id}:{parent-span-id}:{flags}``, base16, ids not zero.

    Ids may be shorter than 32 / 16 digits (0-padded on the left); flags are one byte.
    """
    fields = value.strip().split(":")
    if len(fields) != 4:
        return None
    trace_id, span_id, parent_id, flags = fields
    limits = ((trace_id, 32), (span_id, 16), (parent_id, 16), (flags, 2))
    if not all(_hex(field) and len(field) <= limit for field, limit in limits):
        return None
    if int(trace_id, 16) == 0 or int(span_id, 16) == 0:
        return None
    return int(trace_id, 16), int(span_id, 16), bool(int(flags, 16) & 0x01)


# --------------------------------------------------------------------------- generated headers

#: Characters that make near-valid headers interesting: hex of both cases, separators,
#: whitespace, signs and prefixes int() accepts, non-ASCII digits, control characters.
NASTY = "0123456789abcdefABCDEFxX-:_+; \t\n\r%=,\x00\u0661\uff10\u00e9g"

hex_lower = "0123456789abcdef"


@st.composite
def mutated(draw: st.DrawFn, fields: list[str], separator: str) -> str:
    """A valid header (given as fields) with one to three field- or character-level mutations."""
    fields = list(fields)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(
                [
                    "zeros",
                    "shorter",
                    "longer",
                    "non-hex",
                    "upper",
                    "prefix",
                    "drop-field",
                    "extra-field",
                    "char-delete",
                    "char-insert",
                    "char-replace",
                    "whitespace",
                ]
            )
        )
        index = draw(st.integers(0, len(fields) - 1))
        field = fields[index]
        if kind == "zeros":
            fields[index] = "0" * len(field)
        elif kind == "shorter" and field:
            fields[index] = field[: draw(st.integers(0, len(field) - 1))]
        elif kind == "longer":
            fields[index] = field + draw(st.text(hex_lower, min_size=1, max_size=3))
        elif kind == "non-hex" and field:
            position = draw(st.integers(0, len(field) - 1))
            char = draw(st.sampled_from("gxzG-_ :\u0661\uff10"))
            fields[index] = field[:position] + char + field[position + 1 :]
        elif kind == "upper":
            fields[index] = field.upper()
        elif kind == "prefix":
            fields[index] = draw(st.sampled_from(["0x", "+", "-", " ", "0"])) + field
        elif kind == "drop-field" and len(fields) > 1:
            del fields[index]
        elif kind == "extra-field":
            fields.insert(index, draw(st.text(hex_lower, max_size=4)))
        else:
            text = separator.join(fields)
            position = draw(st.integers(0, len(text)))
            char = draw(st.sampled_from(NASTY))
            if kind == "char-delete" and text:
                position = min(position, len(text) - 1)
                text = text[:position] + text[position + 1 :]
            elif kind == "char-insert":
                text = text[:position] + char + text[position:]
            elif kind == "char-replace" and text:
                position = min(position, len(text) - 1)
                text = text[:position] + char + text[position + 1 :]
            elif kind == "whitespace":
                text = (
                    draw(st.sampled_from(["", " ", "\t", "\n"]))
                    + text
                    + draw(st.sampled_from(["", " ", "\t"]))
                )
            fields = text.split(separator) if text else [""]
    return separator.join(fields)


def hexes(length: int) -> st.SearchStrategy[str]:
    return st.text(hex_lower, min_size=length, max_size=length)


def random_text() -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=80), st.text(NASTY, max_size=80))


valid_traceparent_fields = st.builds(
    lambda v, t, s, f: [v, t, s, f],
    st.sampled_from(["00", "00", "01", "cc", "fe"]),
    hexes(32),
    hexes(16),
    hexes(2),
)
valid_b3_fields = st.builds(
    lambda t, s, rest: [t, s, *rest],
    st.one_of(hexes(16), hexes(32)),
    hexes(16),
    st.one_of(
        st.just([]),
        st.tuples(st.sampled_from("10d")).map(list),
        st.tuples(st.sampled_from("10d"), hexes(16)).map(list),
    ),
)
valid_uber_fields = st.builds(
    lambda t, s, p, f: [t, s, p, f],
    st.text(hex_lower, min_size=1, max_size=32),
    st.text(hex_lower, min_size=1, max_size=16),
    st.text(hex_lower, min_size=1, max_size=16),
    st.text(hex_lower, min_size=1, max_size=2),
)


def malformed(
    valid_fields: st.SearchStrategy[list[str]], separator: str, reference: Callable[[str], Any]
) -> Any:
    candidates = st.one_of(random_text(), valid_fields.flatmap(lambda fields: mutated(fields, separator)))
    return candidates.filter(lambda header: reference(header) is None)


def _check(
    propagator: TextMapPropagator, carrier: dict[str, str], expected: Any, keep_sentinel: bool
) -> None:
    base = trace.set_span_in_context(SENTINEL, Context()) if keep_sentinel else Context()
    extracted = propagator.extract(carrier, base)  # never raises
    span = trace.get_current_span(extracted)
    if expected is None:
        if keep_sentinel:
            assert span is SENTINEL, span
        else:
            assert not span.get_span_context().is_valid, span
    else:
        assert _ids(extracted) == expected


@given(
    header=malformed(valid_traceparent_fields, "-", _traceparent),
    tracestate=st.text(max_size=40),
    keep=st.booleans(),
)
@FUZZ
def test_malformed_traceparent_is_ignored(header: str, tracestate: str, keep: bool) -> None:
    _check(make_propagator(["tracecontext"]), {"traceparent": header, "tracestate": tracestate}, None, keep)


@given(header=malformed(valid_b3_fields, "-", _b3_single), keep=st.booleans())
@FUZZ
def test_malformed_b3_single_header_is_ignored(header: str, keep: bool) -> None:
    assume(header != "0")  # the bare deny, a valid header (test_b3_bare_deny_starts_an_unsampled_trace)
    _check(make_propagator(["b3"]), {"b3": header}, None, keep)


b3_multi_headers = st.fixed_dictionaries(
    {
        "x-b3-traceid": st.one_of(
            random_text(), st.one_of(hexes(16), hexes(32)).flatmap(lambda t: mutated([t], "\x00"))
        ),
        "x-b3-spanid": st.one_of(random_text(), hexes(16).flatmap(lambda s: mutated([s], "\x00")), hexes(16)),
    },
    optional={
        "x-b3-sampled": st.sampled_from(["1", "0", "true", "d", "", "x"]),
        "x-b3-flags": st.sampled_from(["1", "0", ""]),
    },
)


@given(headers=b3_multi_headers.filter(lambda h: _b3_multi(h) is None), keep=st.booleans())
@FUZZ
def test_malformed_b3_multi_headers_are_ignored(headers: dict[str, str], keep: bool) -> None:
    _check(make_propagator(["b3multi"]), headers, None, keep)


@given(
    header=malformed(valid_uber_fields, ":", _uber_trace_id),
    entries=st.dictionaries(
        st.text(_TOKEN, min_size=1, max_size=8).map(lambda k: "uberctx-" + k), random_text(), max_size=3
    ),
    keep=st.booleans(),
)
@FUZZ
def test_malformed_uber_trace_id_is_ignored(header: str, entries: dict[str, str], keep: bool) -> None:
    _check(make_propagator(["jaeger"]), {"uber-trace-id": header, **entries}, None, keep)


_BAGGAGE_KEY = set(_TOKEN)


@given(
    header=st.one_of(
        random_text(),
        st.lists(
            st.builds(
                lambda k, v: f"{k}={v}",
                st.text(_TOKEN + NASTY, max_size=8),
                st.text(string.printable + NASTY, max_size=12),
            ),
            max_size=4,
        ).map(",".join),
    ),
    keep=st.booleans(),
)
@FUZZ
def test_malformed_baggage_never_raises_and_never_touches_the_span(header: str, keep: bool) -> None:
    base = trace.set_span_in_context(SENTINEL, Context()) if keep else Context()
    extracted = make_propagator(["baggage"]).extract({"baggage": header}, base)
    assert (trace.get_current_span(extracted) is SENTINEL) is keep
    assert dict(baggage.get_all(extracted)) == _reference_baggage(header)


#: W3C Baggage ``baggage-octet``: printable US-ASCII but space, DQUOTE, comma, semicolon, backslash.
_BAGGAGE_OCTETS = {chr(c) for c in range(0x21, 0x7F)} - set('",;\\')


def _reference_baggage(header: str) -> dict[str, str]:
    """The entries W3C Baggage gives for ``header``: token keys as they are, values decoded."""
    from urllib.parse import unquote

    entries: dict[str, str] = {}
    for member in header.split(","):
        key, sep, value = member.split(";")[0].partition("=")
        key, value = key.strip(" \t"), value.strip(" \t")
        if sep and key and set(key) <= _BAGGAGE_KEY and set(value) <= _BAGGAGE_OCTETS:
            entries[key] = unquote(value)
    return entries


# --------------------------------------------------------------------------- valid variants are read exactly


@given(
    fields=valid_traceparent_fields,
    padding=st.sampled_from(["", " ", "\t "]),
    future_fields=st.booleans(),
    keep=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_valid_traceparent_is_read_exactly(
    fields: list[str], padding: str, future_fields: bool, keep: bool
) -> None:
    suffix = "-with-more-fields" if future_fields and fields[0] != "00" else ""
    header = padding + "-".join(fields) + suffix + padding
    expected = _traceparent(header)
    if int(fields[1], 16) and int(fields[2], 16):
        assert expected is not None
    _check(make_propagator(["tracecontext"]), {"traceparent": header}, expected, keep)


@given(fields=valid_b3_fields, upper=st.booleans(), keep=st.booleans())
@settings(max_examples=300, deadline=None)
def test_valid_b3_single_header_is_read_exactly(fields: list[str], upper: bool, keep: bool) -> None:
    ids = [field.upper() for field in fields[:2]] if upper else fields[:2]
    header = "-".join([*ids, *fields[2:]])
    trace_id, span_id = int(fields[0], 16), int(fields[1], 16)
    sampled = len(fields) == 2 or fields[2] in ("1", "d")  # no sampling state: deferred
    expected = (trace_id, span_id, sampled) if trace_id and span_id else None
    assert _b3_single(header) == expected
    _check(make_propagator(["b3"]), {"b3": header}, expected, keep)


@given(
    trace_id=st.one_of(hexes(16), hexes(32)),
    span_id=hexes(16),
    extra=st.fixed_dictionaries(
        {},
        optional={"x-b3-sampled": st.sampled_from(["1", "0", "true", "false"]), "x-b3-flags": st.just("1")},
    ),
    keep=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_valid_b3_multi_headers_are_read_exactly(
    trace_id: str, span_id: str, extra: dict[str, str], keep: bool
) -> None:
    headers = {"x-b3-traceid": trace_id, "x-b3-spanid": span_id, **extra}
    sampled = extra.get("x-b3-sampled") in ("1", "true") or "x-b3-flags" in extra
    expected = (
        (int(trace_id, 16), int(span_id, 16), sampled) if int(trace_id, 16) and int(span_id, 16) else None
    )
    assert _b3_multi(headers) == expected
    _check(make_propagator(["b3multi"]), headers, expected, keep)


@given(fields=valid_uber_fields, keep=st.booleans())
@settings(max_examples=300, deadline=None)
def test_valid_uber_trace_id_is_read_exactly(fields: list[str], keep: bool) -> None:
    header = ":".join(fields)
    trace_id, span_id, flags = int(fields[0], 16), int(fields[1], 16), int(fields[3], 16)
    expected = (trace_id, span_id, bool(flags & 1)) if trace_id and span_id else None
    assert _uber_trace_id(header) == expected
    _check(make_propagator(["jaeger"]), {"uber-trace-id": header}, expected, keep)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"00-{TRACE_HEX}-{SPAN_HEX}-01", (TRACE_ID, SPAN_ID, True)),
        (f"00-{TRACE_HEX}-{SPAN_HEX}-03", (TRACE_ID, SPAN_ID, True)),
        (f"00-{TRACE_HEX}-{SPAN_HEX}-02", (TRACE_ID, SPAN_ID, False)),
        (f"cc-{TRACE_HEX}-{SPAN_HEX}-01-what-the-future-holds", (TRACE_ID, SPAN_ID, True)),
        (f"00-{TRACE_HEX}-{SPAN_HEX}-01-extra", None),
        (f"ff-{TRACE_HEX}-{SPAN_HEX}-01", None),
        (f"00-{TRACE_HEX.upper()}-{SPAN_HEX}-01", None),
        (f"00-{'0' * 32}-{SPAN_HEX}-01", None),
        (f"00-{TRACE_HEX}-{'0' * 16}-01", None),
        (f"00-{TRACE_HEX}-{SPAN_HEX}-1", None),
        (f"00-{TRACE_HEX[:-1]}-{SPAN_HEX}-01", None),
        (f"0-{TRACE_HEX}-{SPAN_HEX}-01", None),
    ],
)
def test_traceparent_examples_from_the_specification(header: str, expected: Any) -> None:
    assert _traceparent(header) == expected
    _check(make_propagator(["tracecontext"]), {"traceparent": header}, expected, keep_sentinel=True)


_IMPORTED_FIRST = """
import opentelemetry.propagate  # as libraries do at import, before configure()

print(sorted(type(p).__name__ for p in opentelemetry.propagate.get_global_textmap()._propagators))
import tracekit

tracekit.configure(exporters=[])
carrier = {}
with tracekit.span("outgoing"):
    opentelemetry.propagate.inject(carrier)
print(sorted(carrier))
"""


@pytest.mark.parametrize(
    ("propagators", "loaded", "fields"),
    [
        ("b3multi", ["B3MultiFormat"], ["x-b3-sampled", "x-b3-spanid", "x-b3-traceid"]),
        (
            "tracecontext,b3",
            ["B3SingleFormat", "TraceContextTextMapPropagator"],
            ["b3", "traceparent", "tracestate"],
        ),
    ],
)
def test_b3_names_load_when_the_api_reads_otel_propagators_first(
    propagators: str, loaded: list[str], fields: list[str]
) -> None:
    # The API looks OTEL_PROPAGATORS names up in the opentelemetry_propagator entry points,
    # where tracekit registers b3 and b3multi (pyproject.toml).
    env = {**os.environ, "OTEL_PROPAGATORS": propagators}
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTED_FIRST],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [repr(loaded), repr(fields)]


@pytest.mark.parametrize(
    ("name", "received", "sent"),
    [
        ("b3", {"b3": f"{TRACE_HEX}-{SPAN_HEX}-d"}, {"b3": f"{TRACE_HEX}-{{span}}-d"}),
        (
            "b3multi",
            {"x-b3-traceid": TRACE_HEX, "x-b3-spanid": SPAN_HEX, "x-b3-flags": "1"},
            {"x-b3-traceid": TRACE_HEX, "x-b3-spanid": "{span}", "x-b3-flags": "1"},
        ),
        (
            "b3",
            {"x-b3-traceid": TRACE_HEX, "x-b3-spanid": SPAN_HEX, "x-b3-flags": "1"},
            {"b3": f"{TRACE_HEX}-{{span}}-d"},
        ),
    ],
    ids=["single", "multi", "multi-in-single-out"],
)
def test_b3_debug_is_sampled_and_sent_on(name: str, received: dict[str, str], sent: dict[str, str]) -> None:
    # OpenTelemetry's B3 requirements: the debug flag MUST be kept and sent on, and means sampled.
    tracekit.configure(exporters=[], propagators=[name])
    from opentelemetry import propagate

    context = propagate.extract(received)
    parent = trace.get_current_span(context).get_span_context()
    assert (parent.trace_id, parent.span_id, parent.trace_flags.sampled) == (TRACE_ID, SPAN_ID, True)
    token = otel_context.attach(context)
    try:
        with tracekit.span("handling") as span:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            span_hex = f"{span.get_span_context().span_id:016x}"
            assert carrier == {key: value.replace("{span}", span_hex) for key, value in sent.items()}
            # A trace of its own started inside is not the debug one.
            inner = otel_context.attach(trace.set_span_in_context(trace.INVALID_SPAN))
            try:
                with tracekit.span("new trace") as root:
                    assert root.get_span_context().trace_id != TRACE_ID
                    other: dict[str, str] = {}
                    propagate.inject(other)
            finally:
                otel_context.detach(inner)
    finally:
        otel_context.detach(token)
    assert other
    assert not any(value.endswith("-d") for value in other.values())
    assert "x-b3-flags" not in other


@pytest.mark.parametrize("name", ["b3", "b3multi"])
def test_b3_bare_deny_starts_an_unsampled_trace(name: str) -> None:
    # B3: a single header of "0" alone is a deny without ids; what follows is not sampled.
    tracekit.configure(exporters=[], propagators=[name])
    from opentelemetry import propagate

    context = propagate.extract({"b3": "0"})
    parent = trace.get_current_span(context).get_span_context()
    assert parent.is_valid
    assert parent.is_remote
    assert not parent.trace_flags.sampled
    token = otel_context.attach(context)
    try:
        with tracekit.span("handling") as span:
            assert not span.is_recording()
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
    finally:
        otel_context.detach(token)
    trace_hex = f"{parent.trace_id:032x}"
    if name == "b3":
        assert re.fullmatch(f"{trace_hex}-[0-9a-f]{{16}}-0", carrier["b3"])
    else:
        assert carrier["x-b3-traceid"] == trace_hex
        assert carrier["x-b3-sampled"] == "0"
