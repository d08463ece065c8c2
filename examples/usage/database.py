"""Database spans: sqlite3 statements, named from their summary, literals sanitized.

python examples/usage/database.py
"""

from __future__ import annotations

import sqlite3

import tracekit


def main() -> None:
    tracekit.configure(service_name="inventory", exporters=["console"])
    with tracekit.span("restock"):
        db = sqlite3.connect(":memory:")
        db.execute("CREATE TABLE stock (sku TEXT, quantity INTEGER)")
        db.executemany("INSERT INTO stock VALUES (?, ?)", [("A-1", 3), ("B-2", 0)])
        # The literal 'B-2' never leaves the process: db.query.text reads sku = ?
        db.execute("SELECT quantity FROM stock WHERE sku = 'B-2'").fetchall()
        db.close()
    tracekit.shutdown()


if __name__ == "__main__":
    main()
