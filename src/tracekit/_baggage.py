"""W3C Baggage: the ``baggage`` request header.

The propagator registered under the name ``baggage``. It reads and writes the header as
the W3C Baggage specification defines it (https://www.w3.org/TR/baggage/), where the
propagator in ``opentelemetry-api`` treats values as HTML form data:

* values are percent-encoded with ``%20`` for a space and ``%2B`` for a plus sign, and a
  received ``+`` is a plus sign, not a space (services in other languages read it so);
* a member's ``;`` properties are metadata, which the OpenTelemetry API has no place for:
  they are left out rather than made part of the value;
* keys are tokens, used as they are: a key is never percent-decoded (``%20=x`` is not the
  empty key), and an entry whose key is not a token cannot be sent and is left out.

Members that do not parse are skipped and the others kept. At most 180 members are read
or written, and no more than 8192 characters: the specification's limits. A member that
does not fit is left out whole, never cut.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from opentelemetry import baggage
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)

from tracekit._logging import warn_once

__all__ = ["BAGGAGE", "W3CBaggagePropagator"]

BAGGAGE = "baggage"
MAX_MEMBERS = 180
MAX_LENGTH = 8192

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")
_OWS = " \t"


def parse_baggage(header: str) -> dict[str, str]:
    """The entries of a ``baggage`` header value: keys as sent, values percent-decoded.

    A member that would take the entries read past the length limit is left out whole,
    never cut: the specification forbids passing on part of a list-member.
    """
    entries: dict[str, str] = {}
    length = 0
    skipped = 0
    for member in header.split(","):
        if len(entries) == MAX_MEMBERS:
            break
        size = len(member.strip(_OWS))
        if length + size > MAX_LENGTH:
            skipped += 1
            continue
        key, separator, value = member.partition(";")[0].partition("=")
        key, value = key.strip(_OWS), value.strip(_OWS)
        if separator and _TOKEN.fullmatch(key) and _VALUE.fullmatch(value):
            entries[key] = unquote(value)
            length += size + 1
    if skipped:
        warn_once(
            "baggage-limit-in",
            "tracekit: a received baggage header is over %d characters; %d entries that did not fit "
            "were left out whole (the others are kept)",
            MAX_LENGTH,
            skipped,
        )
    return entries


def format_baggage(entries: dict[str, object]) -> str:
    """The ``baggage`` header value for ``entries``, within the specification's limits."""
    members: list[str] = []
    length = -1
    for key, value in entries.items():
        if not isinstance(key, str) or not _TOKEN.fullmatch(key):
            warn_once(
                "baggage-key",
                "tracekit: baggage key %r is not a token (RFC 7230) and cannot be sent; it is left out",
                key,
            )
            continue
        member = f"{key}={quote(str(value), safe='')}"
        if len(members) == MAX_MEMBERS or length + 1 + len(member) > MAX_LENGTH:
            warn_once(
                "baggage-limit",
                "tracekit: baggage over %d entries or %d characters; the entries past the limit are not sent",
                MAX_MEMBERS,
                MAX_LENGTH,
            )
            break
        members.append(member)
        length += 1 + len(member)
    return ",".join(members)


class W3CBaggagePropagator(TextMapPropagator):
    """The ``baggage`` header, extracted and injected as W3C Baggage specifies."""

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        if context is None:
            context = Context()
        fields = getter.get(carrier, BAGGAGE)
        if not fields:
            return context
        for key, value in parse_baggage(",".join(fields)).items():
            context = baggage.set_baggage(key, value, context)
        return context

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        entries = baggage.get_all(context)
        if not entries:
            return
        header = format_baggage(dict(entries))
        if header:
            setter.set(carrier, BAGGAGE, header)

    @property
    def fields(self) -> set[str]:
        return {BAGGAGE}
