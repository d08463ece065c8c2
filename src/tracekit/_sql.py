"""SQL statements as spans show them: literals replaced by ``?``, and a low-cardinality summary.

:func:`analyze` turns a statement into an :class:`Analysis`: the sanitized text
(``db.query.text``), the summary (``db.query.summary``, e.g. ``SELECT orders``), and the
operation and collection when the statement has exactly one of each. Results are kept in a
bounded LRU cache keyed by dialect and statement text, so a statement an application runs
again and again is parsed once.

Sanitizing is lexical, one regular-expression pass per dialect:

* string literals (``'...'`` with doubled quotes, PostgreSQL ``E'...'`` and ``$tag$...$tag$``,
  MySQL's backslash escapes and double-quoted strings, ``X'..'``, ``B'..'``, ``N'..'``),
  numbers (decimal, exponent, hexadecimal, binary) and ``TRUE`` / ``FALSE`` become ``?``;
  an unterminated literal is replaced up to the end, so a cut statement leaks nothing;
* comments (``--``, ``/* */``, MySQL ``#``) are removed;
* ``IN (?, ?, ?)`` lists of literals or placeholders are collapsed to ``IN (?)``;
* quoted identifiers, placeholders (``?``, ``%s``, ``%(name)s``, ``$1``, ``:name``) and
  everything else are kept as written.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

__all__ = ["SUMMARY_LIMIT", "Analysis", "analyze", "dialect_of", "sanitize", "summarize"]

#: db.query.summary is cut (at a word boundary) to at most this many characters.
SUMMARY_LIMIT = 255
#: How many distinct (dialect, statement) pairs the cache keeps.
CACHE_SIZE = 2048


class Analysis(NamedTuple):
    """What a span records about one statement."""

    #: The statement with literals replaced and comments removed.
    text: str
    #: ``{operation} {targets} {operation} {targets} ...`` or None when no operation was found.
    summary: str | None
    #: The operation when the statement has exactly one (``SELECT``, ``CREATE TABLE``, ...).
    operation: str | None
    #: The collection (table) when the statement names exactly one.
    collection: str | None


# --------------------------------------------------------------------------- sanitizing

_COMMENTS = r"(?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))"
_HASH_COMMENT = r"(?P<hash>\#[^\n]*)"
_NUMBER = (
    r"(?P<number>(?<![\w$:.])(?:0[xX][0-9A-Fa-f]+|0[bB][01]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
    r"(?![\w$]))"
)
_BOOLEAN = r"(?P<boolean>(?<![\w$.])(?i:true|false)(?![\w$]))"
_STANDARD_STRING = r"(?P<string>(?:[BbXxNn]|[Uu]&)?'(?:[^']|'')*(?:'|\Z))"
_ESCAPE_STRING = r"(?P<escaped>(?<![\w$])[Ee]'(?:[^'\\]|\\.|'')*(?:'|\\?\Z))"
_DOLLAR_STRING = r"(?P<dollar>(?<![\w$])\$(?P<tag>(?:[A-Za-z_\u0080-\uffff][\w]*)?)\$.*?(?:\$(?P=tag)\$|\Z))"
_MYSQL_STRING = (
    r"(?P<mystring>(?:[BbXxNn]|_[A-Za-z0-9]+)?'(?:[^'\\]|\\.|'')*(?:'|\\?\Z)"
    r'|"(?:[^"\\]|\\.|"")*(?:"|\\?\Z))'
)
_DOUBLE_QUOTED_NAME = r'(?P<dq>"(?:[^"]|"")*(?:"|\Z))'
_BACKTICK_NAME = r"(?P<bt>`(?:[^`]|``)*(?:`|\Z))"
_BRACKET_NAME = r"(?P<br>\[[^\]]*(?:\]|\Z))"

_DIALECTS: dict[str, tuple[str, ...]] = {
    "postgresql": (_COMMENTS, _DOUBLE_QUOTED_NAME, _ESCAPE_STRING, _STANDARD_STRING, _DOLLAR_STRING),
    "mysql": (_COMMENTS, _HASH_COMMENT, _BACKTICK_NAME, _MYSQL_STRING),
    "sqlite": (_COMMENTS, _DOUBLE_QUOTED_NAME, _BACKTICK_NAME, _BRACKET_NAME, _STANDARD_STRING),
    "standard": (_COMMENTS, _DOUBLE_QUOTED_NAME, _STANDARD_STRING),
}
_PATTERNS = {
    name: re.compile("|".join((*parts, _NUMBER, _BOOLEAN)), re.DOTALL) for name, parts in _DIALECTS.items()
}
_KEPT = frozenset(("dq", "bt", "br"))
_REMOVED = frozenset(("comment", "hash"))

_SYSTEM_DIALECTS = {
    "postgresql": "postgresql",
    "cockroachdb": "postgresql",
    "aws.redshift": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "sqlite": "sqlite",
}

_ITEM = r"(?:-\s*)?(?:\?|%s|\$\d+|:\w+|%\(\w+\)s)"
_IN_LIST = re.compile(rf"(?i)\b(IN)\s*\(\s*({_ITEM})(?:\s*,\s*{_ITEM})+\s*\)")


def dialect_of(system: str) -> str:
    """The lexical dialect used for a ``db.system.name``: postgresql, mysql, sqlite or standard."""
    return _SYSTEM_DIALECTS.get(system, "standard")


def _replace(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind in _KEPT:
        return match.group()
    if kind in _REMOVED:
        return ""
    return "?"


def sanitize(sql: str, dialect: str = "standard") -> str:
    """``sql`` with every literal replaced by ``?``, comments removed and IN lists collapsed."""
    text = _PATTERNS.get(dialect, _PATTERNS["standard"]).sub(_replace, sql)
    if "(" in text:
        text = _IN_LIST.sub(r"\1 (\2)", text)
    return text.strip()


# --------------------------------------------------------------------------- summarizing

_IDENT = r'(?:"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\]|[^\W\d][\w$]*)'
_TOKEN = re.compile(rf"({_IDENT}(?:\s*\.\s*{_IDENT})*)|([(),;])")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Words that start an operation when they begin a statement or a parenthesised query.
_OPERATIONS = _words(
    """
    select insert update delete merge replace upsert create alter drop truncate call exec execute copy
    begin commit rollback savepoint release set show explain grant revoke vacuum analyze pragma lock
    declare fetch move close prepare deallocate listen unlisten notify do start use describe desc
    refresh reindex cluster comment load attach detach values table with end abort discard reset
    checkpoint import optimize rename kill flush handler
    """
)
#: Operations followed directly by their target (after optional modifiers).
_DIRECT_TARGET = _words("update copy truncate lock describe desc table call exec")
#: Operations named with the kind of object they act on: ``CREATE TABLE``, ``DROP INDEX``.
_DDL = frozenset(("create", "alter", "drop"))
_OBJECT_KINDS = _words(
    """
    table index view sequence schema database function procedure trigger type extension role user
    domain policy rule aggregate collation tablespace event server publication subscription
    """
)
#: Words that introduce a list of targets.
_TARGET_INTRODUCERS = frozenset(("from", "join", "into", "using"))
#: Words skipped before a target.
_TARGET_MODIFIERS = frozenset(
    ("only", "lateral", "if", "not", "exists", "table", "concurrently", "ignore", "low_priority", "quick")
)
#: Words that end a target's alias position (they are clauses, not aliases).
_CLAUSES = _words(
    """
    where join left right inner outer cross full natural on using group order limit offset having union
    intersect except window for set values returning fetch default select as lateral tablesample with
    into output partition straight_join force use when then else do from
    """
)

_LIMIT = SUMMARY_LIMIT


def summarize(sanitized: str) -> tuple[str | None, str | None, str | None]:
    """``(summary, operation, collection)`` of an already sanitized statement."""
    operations: list[str] = []
    targets: list[str] = []
    statements: list[list[str]] = [[]]
    parts = statements[0]
    # One entry per open parenthesis: whether it opened a query (FROM counts inside it).
    stack: list[bool] = []
    at_start = True  # the next word may begin an operation
    expect_target = False  # the next name is a target
    in_list = False  # after a target in a FROM list: an alias or a comma may follow
    after_comma_is_target = False
    ddl: str | None = None  # a CREATE / ALTER / DROP waiting for its object kind
    with_statement = False
    copy_statement = False  # COPY t FROM STDIN: FROM names no table
    procedure = False  # CALL p: p is a target, not a collection
    previous = ""
    for match in _TOKEN.finditer(sanitized):
        word: str = match.group(1)
        punctuation: str | None = match.group(2)
        if punctuation is not None:
            if punctuation == "(":
                stack.append(False)
                at_start = True
                expect_target = False
                in_list = False
            elif punctuation == ")":
                if stack:
                    stack.pop()
                at_start = with_statement and not stack
                expect_target = False
                in_list = False
            elif punctuation == ",":
                if in_list and after_comma_is_target:
                    expect_target = True
                in_list = False
                at_start = with_statement and not stack
            else:  # ";"
                stack.clear()
                at_start = True
                expect_target = in_list = after_comma_is_target = with_statement = copy_statement = False
                ddl = None
                parts = []
                statements.append(parts)
            previous = punctuation
            continue
        lower = word.lower()
        if ddl is not None:
            if lower == "materialized":
                ddl = f"{ddl} {word}"
            elif lower in _OBJECT_KINDS:
                named = f"{ddl} {word}"
                operations.append(named)
                parts.append(named)
                ddl = None
                expect_target = True
                after_comma_is_target = in_list = False
            previous = lower
            continue
        if at_start and lower in _OPERATIONS:
            at_start = False
            in_list = False
            if stack:
                stack[-1] = True
            if lower == "with":
                with_statement = True
                previous = lower
                continue
            if lower in _DDL:
                ddl = word
                previous = lower
                continue
            if lower == "values" or (lower == "table" and previous not in ("", "(", ";")):
                previous = lower
                continue
            operations.append(word)
            parts.append(word)
            expect_target = lower in _DIRECT_TARGET
            after_comma_is_target = lower in ("truncate", "lock")
            copy_statement = copy_statement or lower == "copy"
            procedure = lower in ("call", "exec")
            if lower in ("explain", "prepare", "declare"):
                at_start = True
            previous = lower
            continue
        if lower == "select":
            operations.append(word)
            parts.append(word)
            if stack:
                stack[-1] = True
            at_start = False
            expect_target = in_list = False
            previous = lower
            continue
        at_start = False
        if (
            lower in _TARGET_INTRODUCERS
            and (stack[-1] if stack else not copy_statement)
            and previous != "distinct"
        ):
            expect_target = True
            after_comma_is_target = lower == "from"
            in_list = False
            previous = lower
            continue
        if expect_target:
            if lower in _TARGET_MODIFIERS:
                previous = lower
                continue
            if lower in _CLAUSES:
                expect_target = False
            else:
                if not procedure:
                    targets.append(word)
                parts.append(word)
                expect_target = False
                in_list = True
            previous = lower
            continue
        if in_list and lower in _CLAUSES and lower not in ("as",):
            in_list = False
        previous = lower
    summary = _join(statements)
    operation = operations[0] if len(operations) == 1 else None
    unique = set(targets)
    collection = targets[0] if len(unique) == 1 else None
    return summary, operation, collection


def _join(statements: list[list[str]]) -> str | None:
    pieces: list[str] = []
    last: list[str] | None = None
    for parts in statements:
        if not parts or parts == last:
            continue  # a script repeating one statement is summarized once
        pieces.extend(parts)
        last = parts
    if not pieces:
        return None
    summary = " ".join(pieces)
    if len(summary) > _LIMIT:
        cut = summary.rfind(" ", 0, _LIMIT + 1)
        summary = summary[: cut if cut > 0 else _LIMIT]
    return summary


@lru_cache(maxsize=CACHE_SIZE)
def analyze(sql: str, dialect: str = "standard") -> Analysis:
    """The sanitized text, summary, operation and collection of ``sql`` (cached)."""
    text = sanitize(sql, dialect)
    summary, operation, collection = summarize(text)
    return Analysis(text, summary, operation, collection)
