"""Keep secrets out of span attributes: URL credentials, sensitive query values, headers."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote_plus

__all__ = [
    "REDACTED",
    "SENSITIVE_QUERY_KEYS",
    "captured_headers",
    "header_sanitizer",
    "redact_query",
    "redact_url",
]

REDACTED = "REDACTED"

#: Query parameters whose values are replaced by ``REDACTED`` in ``url.full`` (compared
#: case-insensitively): signatures, tokens, keys and passwords.
SENSITIVE_QUERY_KEYS = frozenset(
    key.lower()
    for key in (
        "sig",
        "signature",
        "token",
        "access_token",
        "api_key",
        "apikey",
        "key",
        "password",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
        "X-Goog-Signature",
        "AWSAccessKeyId",
    )
)


def redact_url(url: str) -> str:
    """``url`` with ``user:password@`` replaced by ``REDACTED:REDACTED@`` and sensitive query values redacted.

    The rest of the URL is kept byte for byte. URLs without ``@`` or ``?`` are returned
    as they are, without parsing.
    """
    if "@" in url:
        url = _redact_credentials(url)
    if "?" in url:
        url = _redact_query(url)
    return url


def _redact_credentials(url: str) -> str:
    scheme_end = url.find("://")
    if scheme_end < 0:
        return url
    start = scheme_end + 3
    end = len(url)
    for stop in "/?#":
        position = url.find(stop, start)
        if 0 <= position < end:
            end = position
    at = url.rfind("@", start, end)
    if at < 0:
        return url
    return f"{url[:start]}{REDACTED}:{REDACTED}{url[at:]}"


def _redact_query(url: str) -> str:
    base, _, rest = url.partition("?")
    query, hash_mark, fragment = rest.partition("#")
    redacted = redact_query(query)
    if redacted is query:
        return url
    return f"{base}?{redacted}{hash_mark}{fragment}"


def redact_query(query: str) -> str:
    """A query string (without ``?``) with the values of sensitive keys replaced by ``REDACTED``.

    The same object is returned when nothing was redacted.
    """
    changed = False
    pairs = query.split("&")
    for index, pair in enumerate(pairs):
        key, equals, _value = pair.partition("=")
        if equals and unquote_plus(key).lower() in SENSITIVE_QUERY_KEYS:
            pairs[index] = f"{key}={REDACTED}"
            changed = True
    return "&".join(pairs) if changed else query


DEFAULT_SANITIZE_FIELDS = ("authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key")


def header_sanitizer(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive pattern matching (in full) any header name to record as ``[REDACTED]``."""
    parts = [f"(?:{pattern.strip()})" for pattern in patterns if pattern.strip()]
    if not parts:
        return None
    return re.compile("|".join(parts), re.IGNORECASE)


def captured_headers(
    prefix: str, wanted: Iterable[str], headers: Iterable[tuple[str, str]], sanitize: re.Pattern[str] | None
) -> dict[str, tuple[str, ...]]:
    """``{prefix + name: [values]}`` for the ``wanted`` (lowercase) header names found in ``headers``.

    Every value of a header whose name ``sanitize`` matches in full is ``[REDACTED]``.
    """
    values: dict[str, list[str]] = {}
    for name, value in headers:
        lower = name.lower()
        if lower in wanted:
            values.setdefault(lower, []).append(str(value))
    attributes: dict[str, tuple[str, ...]] = {}
    for name, found in values.items():
        if sanitize is not None and sanitize.fullmatch(name):
            found = ["[REDACTED]"] * len(found)
        attributes[prefix + name] = tuple(found)
    return attributes
