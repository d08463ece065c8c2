"""The documentation stays true to the code it describes."""

from __future__ import annotations

from pathlib import Path

from test_settings import ISSUE_VARIABLES
from tracekit._settings import TABLE_END, TABLE_START, declarations, render_markdown_table

ROOT = Path(__file__).resolve().parent.parent


def test_configuration_table_matches_the_declarations() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    table = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    assert table.strip() == render_markdown_table().strip(), (
        "docs/configuration.md is out of date; regenerate it with "
        "python -c \"from tracekit._settings import update_docs; update_docs('docs/configuration.md')\""
    )


def test_every_environment_variable_is_documented_once() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    table = text.split(TABLE_START, 1)[1]
    for decl in declarations():
        for var in decl.env:
            assert table.count(f"`{var}`") == 1, var


def test_the_foundation_variables_are_all_declared() -> None:
    declared = {var for decl in declarations() for var in decl.env}
    assert declared >= ISSUE_VARIABLES, sorted(ISSUE_VARIABLES - declared)
