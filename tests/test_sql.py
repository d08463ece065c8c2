"""SQL sanitizing and summaries: worked cases, and generated statements whose literals must all vanish."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracekit._sql import SUMMARY_LIMIT, analyze, dialect_of, sanitize, summarize

SANITIZED = [
    # (dialect, statement, sanitized)
    (
        "postgresql",
        "SELECT * FROM users WHERE email = 'bob@example.com'",
        "SELECT * FROM users WHERE email = ?",
    ),
    ("postgresql", "SELECT * FROM t WHERE a = 'it''s' AND b = 42", "SELECT * FROM t WHERE a = ? AND b = ?"),
    ("postgresql", "SELECT 1.5, .5, 1e10, 2.5E-3, -7, 0x1F", "SELECT ?, ?, ?, ?, -?, ?"),
    ("postgresql", "SELECT * FROM t WHERE ok = TRUE OR ok = false", "SELECT * FROM t WHERE ok = ? OR ok = ?"),
    ("postgresql", "SELECT x FROM t WHERE id IN (1, 2, 3)", "SELECT x FROM t WHERE id IN (?)"),
    ("postgresql", "SELECT x FROM t WHERE id in ( 'a' , 'b' )", "SELECT x FROM t WHERE id in (?)"),
    ("postgresql", "SELECT x FROM t WHERE id IN ($1, $2, $3)", "SELECT x FROM t WHERE id IN ($1)"),
    ("postgresql", "SELECT x FROM t WHERE id IN (%s, %s)", "SELECT x FROM t WHERE id IN (%s)"),
    (
        "postgresql",
        "SELECT x FROM t WHERE id IN (SELECT id FROM u)",
        "SELECT x FROM t WHERE id IN (SELECT id FROM u)",
    ),
    ("postgresql", "SELECT 1 -- the answer is 'secret'\nFROM t", "SELECT ? \nFROM t"),
    ("postgresql", "SELECT /* user 42 */ a FROM t", "SELECT  a FROM t"),
    ("postgresql", "SELECT a FROM t /* unterminated 'secret'", "SELECT a FROM t"),
    (
        "postgresql",
        'SELECT "Weird ""1"" name", t1.c2 FROM "table 2"',
        'SELECT "Weird ""1"" name", t1.c2 FROM "table 2"',
    ),
    ("postgresql", "SELECT $$it's 'quoted'$$, $tag$x $$ y$tag$", "SELECT ?, ?"),
    ("postgresql", "SELECT E'it\\'s', U&'d\\0061t', B'0101', X'ff'", "SELECT ?, ?, ?, ?"),
    (
        "postgresql",
        "SELECT a FROM t WHERE b = $1 AND c = %(name)s AND d = :e",
        "SELECT a FROM t WHERE b = $1 AND c = %(name)s AND d = :e",
    ),
    ("postgresql", "SELECT 'unterminated secret", "SELECT ?"),
    (
        "postgresql",
        "SELECT ts::date, '2024-01-01'::date, INTERVAL '1 day'",
        "SELECT ts::date, ?::date, INTERVAL ?",
    ),
    (
        "mysql",
        "SELECT * FROM `users` WHERE name = \"bob\" AND pw = 'a\\'b' # note 'x'\n",
        "SELECT * FROM `users` WHERE name = ? AND pw = ?",
    ),
    ("mysql", "SELECT _utf8mb4'text', x'41', 0b101", "SELECT ?, ?, ?"),
    ("mysql", "SELECT 'a\\\\', 'b'", "SELECT ?, ?"),
    (
        "sqlite",
        "SELECT [col 1], `c2` FROM [my table] WHERE a = 'x'",
        "SELECT [col 1], `c2` FROM [my table] WHERE a = ?",
    ),
    ("standard", "select table1.col2 from table1", "select table1.col2 from table1"),
]


@pytest.mark.parametrize(("dialect", "statement", "expected"), SANITIZED)
def test_sanitize(dialect: str, statement: str, expected: str) -> None:
    assert sanitize(statement, dialect) == expected


SUMMARIES = [
    # (statement, summary, operation, collection) -- the examples of the semantic conventions first
    ("SELECT * FROM wuser_table WHERE username = ?", "SELECT wuser_table", "SELECT", "wuser_table"),
    (
        "INSERT INTO shipping_details (order_id, address) "
        "SELECT order_id, address FROM orders WHERE order_id = ?",
        "INSERT shipping_details SELECT orders",
        None,
        None,
    ),
    (
        "SELECT * FROM songs, artists WHERE songs.artist_id == artists.id",
        "SELECT songs artists",
        "SELECT",
        None,
    ),
    (
        "SELECT order_date FROM (SELECT * FROM orders o JOIN customers c ON o.customer_id = c.customer_id)",
        "SELECT SELECT orders customers",
        None,
        None,
    ),
    ('SELECT * FROM "song list", artists', 'SELECT "song list" artists', "SELECT", None),
    ("select id from public.orders o where o.id = ?", "select public.orders", "select", "public.orders"),
    ("UPDATE orders SET total = ? WHERE id = ?", "UPDATE orders", "UPDATE", "orders"),
    ("DELETE FROM orders WHERE id = ?", "DELETE orders", "DELETE", "orders"),
    ("INSERT INTO t (a) VALUES (?) ON CONFLICT (a) DO UPDATE SET a = ?", "INSERT t", "INSERT", "t"),
    ("SELECT * FROM orders FOR UPDATE", "SELECT orders", "SELECT", "orders"),
    ("SELECT EXTRACT(YEAR FROM ts), TRIM(BOTH ? FROM name) FROM orders", "SELECT orders", "SELECT", "orders"),
    ("SELECT * FROM a WHERE x IS DISTINCT FROM y", "SELECT a", "SELECT", "a"),
    ("SELECT * FROM t1 LEFT OUTER JOIN t2 ON t1.a = t2.a", "SELECT t1 t2", "SELECT", None),
    (
        "WITH recent AS (SELECT * FROM orders) SELECT * FROM recent JOIN users u ON u.id = recent.uid",
        "SELECT orders SELECT recent users",
        None,
        None,
    ),
    ("CREATE TABLE IF NOT EXISTS orders (id int)", "CREATE TABLE orders", "CREATE TABLE", "orders"),
    ("create unique index idx_email on users (email)", "create index idx_email", "create index", "idx_email"),
    ("DROP TABLE a", "DROP TABLE a", "DROP TABLE", "a"),
    ("CREATE MATERIALIZED VIEW mv AS SELECT * FROM t", "CREATE MATERIALIZED VIEW mv SELECT t", None, None),
    ("TRUNCATE TABLE a, b", "TRUNCATE a b", "TRUNCATE", None),
    ("COPY orders FROM STDIN", "COPY orders", "COPY", "orders"),
    ("COPY (SELECT * FROM orders) TO STDOUT", "COPY SELECT orders", None, "orders"),
    ("CALL refresh_totals(?)", "CALL refresh_totals", "CALL", None),
    ("SELECT ?", "SELECT", "SELECT", None),
    ("BEGIN", "BEGIN", "BEGIN", None),
    ("SET search_path TO public", "SET", "SET", None),
    ("INSERT INTO t VALUES (?);INSERT INTO t VALUES (?);INSERT INTO t VALUES (?)", "INSERT t", None, "t"),
    ("INSERT INTO a VALUES (?); DELETE FROM b", "INSERT a DELETE b", None, None),
    ("EXPLAIN SELECT * FROM orders", "EXPLAIN SELECT orders", None, "orders"),
    ("frobnicate the widgets", None, None, None),
    ("", None, None, None),
]


@pytest.mark.parametrize(("statement", "summary", "operation", "collection"), SUMMARIES)
def test_summarize(
    statement: str, summary: str | None, operation: str | None, collection: str | None
) -> None:
    assert summarize(statement) == (summary, operation, collection)


def test_a_long_summary_is_cut_at_a_word_boundary() -> None:
    statement = "SELECT * FROM " + ", ".join(f"table_number_{n}" for n in range(40))
    summary, _, _ = summarize(statement)
    assert summary is not None
    assert len(summary) <= SUMMARY_LIMIT
    assert summary.startswith("SELECT table_number_0 table_number_1")
    assert summary.split()[-1].startswith("table_number_")


def test_analyze_caches_per_statement_and_dialect() -> None:
    analyze.cache_clear()
    first = analyze("SELECT * FROM orders WHERE id = 1", "postgresql")
    again = analyze("SELECT * FROM orders WHERE id = 1", "postgresql")
    assert first is again
    info = analyze.cache_info()
    assert (info.hits, info.misses) == (1, 1)
    assert first.text == "SELECT * FROM orders WHERE id = ?"
    assert (first.summary, first.operation, first.collection) == ("SELECT orders", "SELECT", "orders")


@pytest.mark.parametrize(
    ("system", "dialect"),
    [
        ("postgresql", "postgresql"),
        ("mariadb", "mysql"),
        ("mysql", "mysql"),
        ("sqlite", "sqlite"),
        ("x", "standard"),
    ],
)
def test_dialect_of(system: str, dialect: str) -> None:
    assert dialect_of(system) == dialect


# --------------------------------------------------------------------------- generated statements

NAMES = ["id", "email", "orders", "t1", "public.users", "a_b", "total2"]
QUOTED_NAMES = {
    "postgresql": ['"Order Items"', '"x""y"'],
    "sqlite": ['"Order Items"', "[col 9]", "`b`"],
    "mysql": ["`Order Items`", "`x``y`"],
    "standard": ['"Order Items"'],
}
OPERATORS = [
    "=",
    "<>",
    "<",
    ">=",
    "+",
    "*",
    "(",
    ")",
    ",",
    "AND",
    "OR",
    "SELECT",
    "FROM",
    "WHERE",
    "LIKE",
    "||",
]
PLACEHOLDERS = {
    "postgresql": ["$1", "$12", "%s", "%(name)s"],
    "sqlite": ["?", ":name"],
    "mysql": ["%s", "%(name)s"],
    "standard": ["?"],
}
#: Any text at all, literal contents included: quotes, backslashes, comment markers, dollars, newlines.
CONTENT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)


def _string(dialect: str, text: str) -> str:
    if dialect == "mysql":
        escaped = text.replace("\\", "\\\\").replace("'", "\\'")
        return f"'{escaped}'"
    return "'" + text.replace("'", "''") + "'"


def _literals(dialect: str) -> st.SearchStrategy[str]:
    numbers = st.one_of(
        st.integers(min_value=0).map(str),
        st.floats(min_value=0, allow_nan=False, allow_infinity=False)
        .map(repr)
        .filter(lambda s: "e+" not in s),
        st.integers(min_value=0).map(hex),
    )
    strings = CONTENT.map(lambda text: _string(dialect, text))
    options = [numbers, strings, st.sampled_from(["TRUE", "false"])]
    if dialect == "postgresql":
        options.append(
            CONTENT.filter(lambda text: "$q$" not in text and not text.endswith("$q")).map(
                lambda t: f"$q${t}$q$"
            )
        )
        options.append(CONTENT.map(lambda t: "E'" + t.replace("\\", "\\\\").replace("'", "\\'") + "'"))
    if dialect == "mysql":
        options.append(CONTENT.map(lambda t: '"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"'))
    return st.one_of(options)


def _comment(text: str, block: bool) -> str:
    if block:
        return "/*" + text.replace("*/", "") + "*/"
    return "--" + text.replace("\n", " ").replace("\r", " ") + "\n"


@st.composite
def statements(draw: st.DrawFn) -> tuple[str, str, str]:
    """``(dialect, statement, expected)``: tokens joined by spaces, every literal expected as ``?``."""
    dialect = draw(st.sampled_from(["postgresql", "mysql", "sqlite", "standard"]))
    plain = NAMES + QUOTED_NAMES[dialect] + OPERATORS + PLACEHOLDERS[dialect]
    statement: list[str] = []
    expected: list[str] = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["plain", "literal", "literal", "comment"]))
        if kind == "plain":
            token = draw(st.sampled_from(plain))
            statement.append(token)
            expected.append(token)
        elif kind == "literal":
            statement.append(draw(_literals(dialect)))
            expected.append("?")
        else:
            statement.append(_comment(draw(CONTENT), draw(st.booleans())))
    return dialect, " ".join(statement), " ".join(expected)


def _spaced(text: str) -> str:
    return " ".join(text.split())


@settings(max_examples=400, deadline=None)
@given(statements())
def test_no_literal_of_a_generated_statement_survives(case: tuple[str, str, str]) -> None:
    dialect, statement, expected = case
    sanitized = sanitize(statement, dialect)
    # Exact: every literal became one ?, every comment vanished, every other token stayed as written.
    assert _spaced(sanitized) == _spaced(expected)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["postgresql", "mysql", "sqlite", "standard"]),
    st.lists(st.integers(min_value=0) | CONTENT, min_size=2, max_size=8),
)
def test_in_lists_of_literals_collapse(dialect: str, values: list[int | str]) -> None:
    rendered = ", ".join(str(v) if isinstance(v, int) else _string(dialect, v) for v in values)
    assert sanitize(f"SELECT a FROM t WHERE b IN ({rendered})", dialect) == "SELECT a FROM t WHERE b IN (?)"


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["postgresql", "mysql", "sqlite", "standard"]), st.text(max_size=80))
def test_any_text_is_sanitized_without_error(dialect: str, text: str) -> None:
    result = analyze(text, dialect)
    assert isinstance(result.text, str)
    assert result.summary is None or len(result.summary) <= SUMMARY_LIMIT
