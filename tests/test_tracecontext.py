"""W3C Trace Context, Level 1 and Level 2: tracekit's ``tracecontext`` propagator against the spec.

Each case cites the rule it checks (https://www.w3.org/TR/trace-context-2/, sections 3.2
"Traceparent Header", 3.3 "Tracestate Header", 3.4/3.5 "Mutating the ... Field" and 4
"Processing Model"). Requests are given as lists of header fields, so that repeated
fields are what a server would hand over.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from tracekit._propagation import make_propagator
from tracekit._tracecontext import TraceContextPropagator, format_traceparent

TRACE = "12345678901234567890123456789012"
PARENT = "1234567890123456"
VALID = f"00-{TRACE}-{PARENT}-01"

Fields = Sequence[tuple[str, str]]


class FieldsGetter(Getter[Fields]):
    """Header fields as a server receives them: names in any case, fields repeated."""

    def get(self, carrier: Fields, key: str) -> list[str] | None:
        values = [value for name, value in carrier if name.lower() == key]
        return values or None

    def keys(self, carrier: Fields) -> list[str]:
        return [name.lower() for name, _ in carrier]


GETTER = FieldsGetter()
PROPAGATOR = TraceContextPropagator()


def extract(*fields: tuple[str, str]) -> SpanContext:
    context = PROPAGATOR.extract(list(fields), Context(), GETTER)
    return trace.get_current_span(context).get_span_context()


def continued(*fields: tuple[str, str]) -> bool:
    """Whether the request continues trace ``TRACE`` from parent ``PARENT``."""
    span_context = extract(*fields)
    if not span_context.is_valid:
        return False
    assert (f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}") == (TRACE, PARENT)
    assert span_context.is_remote
    return True


def state(*tracestate: str) -> dict[str, str] | None:
    """The tracestate read with a valid traceparent and these tracestate fields."""
    span_context = extract(("traceparent", VALID), *(("tracestate", value) for value in tracestate))
    assert span_context.is_valid, "a tracestate problem must never affect the traceparent"
    return dict(span_context.trace_state)


@pytest.fixture(autouse=True)
def _no_log_output(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Malformed headers come from clients: they are dropped without a word in the log."""
    caplog.set_level(logging.DEBUG)
    yield
    assert [record for record in caplog.records if record.levelno >= logging.WARNING] == []


# --------------------------------------------------------------------------- 3.2 traceparent


def test_the_examples_of_the_specification_are_continued() -> None:
    span_context = extract(("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
    assert (span_context.trace_id, span_context.span_id) == (
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
    )
    assert span_context.trace_flags.sampled
    span_context = extract(("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"))
    assert span_context.is_valid
    assert not span_context.trace_flags.sampled


@pytest.mark.parametrize(
    "name", ["traceparent", "TraceParent", "TrAcEpArEnT", "TRACEPARENT"], ids=lambda name: name
)
def test_the_header_name_is_case_insensitive(name: str) -> None:
    # 3.2.1: vendors MUST expect the header name in any case.
    assert continued((name, VALID))


@pytest.mark.parametrize("name", ["trace-parent", "trace.parent", "trace_parent"])
def test_other_header_names_are_not_traceparent(name: str) -> None:
    assert not continued((name, VALID))


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (f"00-{TRACE}-{PARENT}-01.", "version 00 is exactly 55 characters"),
        (f"00-{TRACE}-{PARENT}-01-what-the-future-will-be-like", "version 00 has four fields"),
        (f"ff-{TRACE}-{PARENT}-01", "version ff is forbidden"),
        (f".0-{TRACE}-{PARENT}-01", "the version is two hex digits"),
        (f"0.-{TRACE}-{PARENT}-01", "the version is two hex digits"),
        (f"000-{TRACE}-{PARENT}-01", "the version is two hex digits followed by a dash"),
        (f"0000-{TRACE}-{PARENT}-01", "the version is two hex digits followed by a dash"),
        (f"0-{TRACE}-{PARENT}-01", "the version is two hex digits"),
        (f"0A-{TRACE}-{PARENT}-01", "HEXDIGLC: lowercase only"),
        (f"00-{'0' * 32}-{PARENT}-01", "an all-zero trace-id is invalid"),
        (f"00-.{TRACE[1:]}-{PARENT}-01", "trace-id characters are lowercase hex"),
        (f"00-{TRACE[:-1]}.-{PARENT}-01", "trace-id characters are lowercase hex"),
        (f"00-{TRACE.replace('1', 'A')}-{PARENT}-01", "trace-id characters are lowercase hex"),
        (f"00-{TRACE}3-{PARENT}-01", "trace-id is 32 characters"),
        (f"00-{TRACE[:-1]}-{PARENT}-01", "trace-id is 32 characters"),
        (f"00-{TRACE}-{'0' * 16}-01", "an all-zero parent-id is invalid"),
        (f"00-{TRACE}-.{PARENT[1:]}-01", "parent-id characters are lowercase hex"),
        (f"00-{TRACE}-{PARENT[:-1]}.-01", "parent-id characters are lowercase hex"),
        (f"00-{TRACE}-{PARENT.replace('1', 'B')}-01", "parent-id characters are lowercase hex"),
        (f"00-{TRACE}-{PARENT}7-01", "parent-id is 16 characters"),
        (f"00-{TRACE}-{PARENT[:-1]}-01", "parent-id is 16 characters"),
        (f"00-{TRACE}-{PARENT}-.0", "trace-flags are lowercase hex"),
        (f"00-{TRACE}-{PARENT}-0.", "trace-flags are lowercase hex"),
        (f"00-{TRACE}-{PARENT}-0F", "trace-flags are lowercase hex"),
        (f"00-{TRACE}-{PARENT}-001", "trace-flags are 2 characters"),
        (f"00-{TRACE}-{PARENT}-1", "trace-flags are 2 characters"),
        (f"00_{TRACE}_{PARENT}_01", "fields are separated by dashes"),
        (f"00-{TRACE}-{PARENT}-01\n", "the value ends with its last field"),
        ("", "an empty value"),
        ("00", "shorter than 55 characters"),
        (f"cc-{TRACE}-{PARENT}-01.what-the-future-will-be-like", "a later version: a dash after the flags"),
        (f"cc-{TRACE}-{PARENT}", "a later version: shorter than 55 characters"),
        (f"cc-{TRACE}-{PARENT}-0", "a later version: shorter than 55 characters"),
        (f"cc-{TRACE.replace('1', 'A')}-{PARENT}-01", "a later version: the same lowercase hex fields"),
        (f"cc-{'0' * 32}-{PARENT}-01-x", "a later version: the same id rules"),
    ],
)
def test_an_invalid_traceparent_restarts_the_trace(value: str, why: str) -> None:
    # 3.2.2 and 4: if the traceparent cannot be parsed, the trace is restarted, and the
    # tracestate of the request is not used either.
    assert not continued(("traceparent", value), ("tracestate", "foo=1")), why


@pytest.mark.parametrize(
    "value",
    [
        f"cc-{TRACE}-{PARENT}-01",
        f"cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like",
        f"01-{TRACE}-{PARENT}-01-",
        f"fe-{TRACE}-{PARENT}-01-\u00e9\x00 anything at all",
    ],
)
def test_a_later_version_is_read_from_its_first_four_fields(value: str) -> None:
    # 3.2.4 Versioning of traceparent: parse trace-id, parent-id and the flags; the two
    # flag characters are at the end of the string or followed by a dash; nothing is
    # assumed about the fields after them.
    assert continued(("traceparent", value))


@pytest.mark.parametrize(
    "value",
    [
        f" {VALID}",
        f"\t{VALID}",
        f"{VALID} ",
        f"{VALID}\t",
        f"\t {VALID} \t",
    ],
)
def test_optional_whitespace_around_the_value_is_ignored(value: str) -> None:
    assert continued(("traceparent", value))


def test_two_traceparent_fields_restart_the_trace() -> None:
    # Which of the two identifies the caller cannot be known: neither is used.
    assert not continued(("traceparent", VALID), ("traceparent", f"00-{TRACE[:-1]}0-{PARENT}-01"))
    assert not continued(("traceparent", VALID), ("traceparent", VALID))


@pytest.mark.parametrize(
    ("flags", "known"),
    [("00", 0x00), ("01", 0x01), ("02", 0x02), ("03", 0x03), ("09", 0x01), ("fe", 0x02), ("ff", 0x03)],
)
@pytest.mark.parametrize("version", ["00", "cc"])
def test_only_the_known_flags_are_read_and_passed_on(version: str, flags: str, known: int) -> None:
    # 3.2.2.5: sampled (0x01) and, in Level 2, random-trace-id (0x02); the other flags
    # are reserved and vendors MUST set them to zero. 4: for a later version, only the
    # flags this version supports are parsed.
    span_context = extract(("traceparent", f"{version}-{TRACE}-{PARENT}-{flags}"))
    assert span_context.is_valid
    assert int(span_context.trace_flags) == known
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, trace.set_span_in_context(NonRecordingSpan(span_context)))
    assert carrier["traceparent"] == f"00-{TRACE}-{PARENT}-{known:02x}"


def test_a_later_version_is_sent_on_as_version_00() -> None:
    # 3.4 Mutating the traceparent field: downgrade the version to the one this
    # implementation knows.
    span_context = extract(("traceparent", f"cc-{TRACE}-{PARENT}-01-future"), ("tracestate", "foo=1"))
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, trace.set_span_in_context(NonRecordingSpan(span_context)))
    assert carrier == {"traceparent": f"00-{TRACE}-{PARENT}-01", "tracestate": "foo=1"}


def test_injected_flags_never_carry_reserved_bits() -> None:
    span_context = SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(0xFF))
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, trace.set_span_in_context(NonRecordingSpan(span_context)))
    assert carrier == {"traceparent": f"00-{1:032x}-{2:016x}-03"}
    assert format_traceparent(span_context) == carrier["traceparent"]


def test_nothing_is_injected_without_a_valid_span_context() -> None:
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, Context())
    PROPAGATOR.inject(carrier, trace.set_span_in_context(NonRecordingSpan(SpanContext(0, 2, False))))
    assert carrier == {}


def test_an_invalid_traceparent_keeps_the_context_it_was_given() -> None:
    # An earlier propagator's context survives a traceparent this one cannot read.
    earlier = NonRecordingSpan(SpanContext(7, 8, is_remote=True, trace_flags=TraceFlags(1)))
    base = trace.set_span_in_context(earlier, Context())
    extracted = PROPAGATOR.extract([("traceparent", "garbage")], base, GETTER)
    assert trace.get_current_span(extracted) is earlier


# --------------------------------------------------------------------------- 3.3 tracestate


def test_the_tracestate_is_carried_with_a_valid_traceparent() -> None:
    assert state("foo=1,bar=2") == {"foo": "1", "bar": "2"}


def test_a_tracestate_without_a_traceparent_is_discarded() -> None:
    # 4.2: a tracestate received without an accompanying traceparent is invalid.
    span_context = extract(("tracestate", "foo=1,bar=2"))
    assert not span_context.is_valid


@pytest.mark.parametrize("name", ["tracestate", "TraceState", "TrAcEsTaTe", "TRACESTATE"])
def test_the_tracestate_name_is_case_insensitive(name: str) -> None:
    span_context = extract(("traceparent", VALID), (name, "foo=1"))
    assert dict(span_context.trace_state) == {"foo": "1"}


@pytest.mark.parametrize("name", ["trace-state", "trace.state"])
def test_other_header_names_are_not_tracestate(name: str) -> None:
    span_context = extract(("traceparent", VALID), (name, "foo=1"))
    assert dict(span_context.trace_state) == {}


@pytest.mark.parametrize(
    "fields",
    [[""], [" "], ["\t , ,"], ["foo=1", ""], ["", "foo=1"], ["foo=1,,bar=2"], [",foo=1,"]],
    ids=repr,
)
def test_empty_and_whitespace_only_members_are_allowed(fields: list[str]) -> None:
    # 3.3.1.1: empty and whitespace-only list members are allowed; an empty tracestate
    # MUST be accepted.
    expected = {key: value for key, value in (("foo", "1"), ("bar", "2")) if any(key in f for f in fields)}
    assert state(*fields) == expected


def test_several_tracestate_fields_are_combined_in_order() -> None:
    # 3.3.1.1: multiple tracestate fields MUST be combined as RFC 9110 combines fields.
    span_context = extract(
        ("traceparent", VALID),
        ("tracestate", "foo=1,bar=2"),
        ("tracestate", "rojo=1,congo=2"),
        ("tracestate", "baz=3"),
    )
    assert list(span_context.trace_state.items()) == [
        ("foo", "1"),
        ("bar", "2"),
        ("rojo", "1"),
        ("congo", "2"),
        ("baz", "3"),
    ]
    assert span_context.trace_state.to_header() == "foo=1,bar=2,rojo=1,congo=2,baz=3"


@pytest.mark.parametrize(
    ("fields", "kept"),
    [
        (["foo=1,foo=1"], [("foo", "1")]),
        (["foo=1,foo=2"], [("foo", "1")]),
        (["foo=1", "foo=1"], [("foo", "1")]),
        (["foo=1", "foo=2"], [("foo", "1")]),
        (["a=1,foo=1,b=2,foo=3"], [("a", "1"), ("foo", "1"), ("b", "2")]),
    ],
    ids=repr,
)
def test_of_a_duplicated_key_the_first_member_is_kept(fields: list[str], kept: list[tuple[str, str]]) -> None:
    # Level 2, 3.3.1.4 and 3.5: a vendor may discard duplicate keys it did not generate.
    span_context = extract(("traceparent", VALID), *(("tracestate", value) for value in fields))
    assert list(span_context.trace_state.items()) == kept


LCALPHA = "abcdefghijklmnopqrstuvwxyz"
KEY_CHARS = LCALPHA + "0123456789_-*/"
VALUE_CHARS = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in ",=")


def test_every_allowed_character_of_keys_and_values() -> None:
    # 3.3.1.3.1 key and 3.3.1.3.2 value.
    value = VALUE_CHARS
    assert state(f"{KEY_CHARS}={value}") == {KEY_CHARS: value}
    assert state(f"{KEY_CHARS}@a-z0-9_-*/={value}") == {f"{KEY_CHARS}@a-z0-9_-*/": value}
    assert state(f"0{KEY_CHARS}@{LCALPHA[:14]}=1") == {f"0{KEY_CHARS}@{LCALPHA[:14]}": "1"}


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("foo=1 \t , \t bar=2, \t baz=3", {"foo": "1", "bar": "2", "baz": "3"}),
        ("foo=1\t \t,\t \tbar=2,\t \tbaz=3", {"foo": "1", "bar": "2", "baz": "3"}),
        (" foo=1", {"foo": "1"}),
        ("\tfoo=1", {"foo": "1"}),
        ("foo=1 ", {"foo": "1"}),
        ("foo=1\t", {"foo": "1"}),
        ("\t foo=1 \t", {"foo": "1"}),
        ("foo= 1", {"foo": " 1"}),
        ("foo=a b", {"foo": "a b"}),
    ],
)
def test_optional_whitespace_around_members_and_spaces_inside_values(
    field: str, expected: dict[str, str]
) -> None:
    # 3.3.1.3.2: leading spaces are part of the value; trailing ones are optional
    # whitespace; spaces and tabs around members are ignored.
    assert state(field) == expected


@pytest.mark.parametrize(
    ("field", "why"),
    [
        ("foo =1", "no space between the key and '='"),
        ("foo= ", "a value ends with a non-space character (and is not empty)"),
        ("foo=", "a value is not empty"),
        ("FOO=1", "keys are lowercase"),
        ("foo.bar=1", "'.' is not a key character"),
        ("_foo=1", "a key begins with a lowercase letter or a digit"),
        ("foo", "a member is key=value"),
        ("=1", "a key is not empty"),
        ("foo=bar=baz", "'=' is not a value character"),
        ("foo=\x7f", "values are printable ASCII"),
        ("foo=\u00e9", "values are printable ASCII"),
        ("foo=a\tb", "a tab is not a value character"),
        ("foo=1;bar=2", "members are separated by commas"),
        ("@foo=1", "a key begins with a lowercase letter or a digit"),
        ("Foo@bar=1", "keys are lowercase"),
    ],
)
def test_one_invalid_member_drops_the_whole_tracestate(field: str, why: str) -> None:
    assert state(f"valid=1,{field},other=2") == {}, why
    assert state("valid=1", field) == {}, why


def test_thirty_two_members_are_kept_thirty_three_drop_the_tracestate() -> None:
    # 3.3.1.1: a list has at most 32 list-members.
    members = [f"k{n}={n}" for n in range(33)]
    assert state(",".join(members[:32])) == {f"k{n}": str(n) for n in range(32)}
    assert state(",".join(members)) == {}
    assert state(",".join(members[:16]), ",".join(members[16:])) == {}
    assert state(",".join(members[:32]) + ", ,,\t,") == {f"k{n}": str(n) for n in range(32)}


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("k" * 256, True),
        ("k" * 257, False),
        ("t" * 241 + "@" + "s" * 14, True),
        ("t" * 242 + "@" + "s", True),
        ("t@" + "s" * 253, True),
        ("t@" + "s" * 255, False),
        ("0" * 241 + "@s", True),
    ],
    ids=lambda value: f"{len(value)}" if isinstance(value, str) else str(value),
)
def test_key_length_limits(key: str, valid: bool) -> None:
    # Level 2: ( lcalpha / DIGIT ) 0*255 ( keychar ), '@' a key character anywhere after the first.
    assert state(f"{key}=1") == ({key: "1"} if valid else {})


@pytest.mark.parametrize("key", ["foo@", "foo@@bar", "foo@bar@baz", "foo@1bar", "1foo", "0@"])
def test_level_2_keys_are_kept_and_passed_on(key: str) -> None:
    # Keys Level 1's multi-tenant grammar refused, and the OpenTelemetry API's TraceState drops.
    assert state(f"{key}=1,bar=2") == {key: "1", "bar": "2"}
    carrier: dict[str, str] = {}
    context = PROPAGATOR.extract(
        [("traceparent", VALID), ("tracestate", f"{key}=1,bar=2")], Context(), GETTER
    )
    PROPAGATOR.inject(carrier, context)
    assert carrier["tracestate"] == f"{key}=1,bar=2"


@pytest.mark.parametrize(("length", "valid"), [(1, True), (256, True), (257, False)])
def test_value_length_limit(length: int, valid: bool) -> None:
    value = "v" * length
    assert state(f"foo={value}") == ({"foo": value} if valid else {})


def test_a_long_valid_tracestate_is_kept_whole() -> None:
    # 3.3.1.5: at least 512 characters SHOULD be propagated, and a vendor that must
    # truncate removes whole entries. A valid list of 32 large members (over 8 KiB) is
    # kept and sent on as it came.
    members = [f"k{n:02d}={'v' * 256}" for n in range(32)]
    field = ",".join(members)
    assert len(field) > 8192
    span_context = extract(("traceparent", VALID), ("tracestate", field))
    assert len(span_context.trace_state) == 32
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, trace.set_span_in_context(NonRecordingSpan(span_context)))
    assert carrier["tracestate"] == field


def test_the_tracestate_is_passed_on_unchanged() -> None:
    # 3.5: the order of unmodified members is preserved.
    span_context = extract(
        ("traceparent", VALID), ("tracestate", "rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE")
    )
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, trace.set_span_in_context(NonRecordingSpan(span_context)))
    assert carrier == {"traceparent": VALID, "tracestate": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"}


def test_an_empty_trace_state_sends_no_tracestate_field() -> None:
    # 3.3.1.1: vendors SHOULD avoid sending empty tracestate headers.
    span_context = SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(1), trace_state=TraceState())
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, trace.set_span_in_context(NonRecordingSpan(span_context)))
    assert list(carrier) == ["traceparent"]


# --------------------------------------------------------------------------- the name tracecontext


def test_the_name_tracecontext_is_this_propagator() -> None:
    (propagator,) = make_propagator(["tracecontext"])._propagators
    assert isinstance(propagator, TraceContextPropagator)
    assert propagator.fields == {"traceparent", "tracestate"}


def test_the_sdk_continues_the_trace_with_the_random_flag_and_the_tracestate() -> None:
    # Level 2, 3.2.2.5.2: a participant that continues a trace keeps the random-trace-id
    # flag it received; 3.5: the tracestate is sent on by the child.
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    parent = PROPAGATOR.extract(
        [("traceparent", f"00-{TRACE}-{PARENT}-03"), ("tracestate", "congo=t61rcWkgMzE")], Context(), GETTER
    )
    span = provider.get_tracer("tests").start_span("child", context=parent)
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, trace.set_span_in_context(span))
    span.end()
    child = span.get_span_context()
    assert carrier == {
        "traceparent": f"00-{TRACE}-{child.span_id:016x}-03",
        "tracestate": "congo=t61rcWkgMzE",
    }
    assert child.span_id != int(PARENT, 16)


def test_a_span_context_is_the_tuple_the_hot_paths_unpack() -> None:
    # format_traceparent(), the tracer and the batch processor unpack SpanContext rather
    # than call its properties; a release of the API that reorders it must fail here.
    state = TraceState([("k", "v")])
    flags = TraceFlags(TraceFlags.SAMPLED)
    assert tuple(SpanContext(1, 2, True, flags, state)) == (1, 2, True, flags, state, True)
    assert tuple(SpanContext(0, 2, False))[5] is False
