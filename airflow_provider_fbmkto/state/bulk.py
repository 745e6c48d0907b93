"""One statement run for many rows (``executemany``), without SQLAlchemy's per-row work on SQLite.

``conn.execute(stmt, rows)`` builds, for every row, a full parameter dictionary (the statement's constants
included) and runs each value through its type's processor: about 20 µs a row, which at a million ledger and
mirror rows was a large share of the map and load tasks. :func:`execute_many` compiles the statement once,
looks up each parameter's processor once, and hands the driver plain tuples: the same SQL, the same values
(each still processed by its own type: JSON encoded, datetimes as the state DB stores them).

Only on SQLite: on PostgreSQL SQLAlchemy batches the rows into pages (``executemany_mode``), which matters far
more there than the per-row work, so the statement goes through SQLAlchemy as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.sql import Executable


def execute_many(conn: Connection, stmt: Executable, rows: Sequence[Mapping[str, Any]]) -> None:
    """``conn.execute(stmt, rows)``, every row naming the same parameters (as executemany requires)."""
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(stmt, list(rows))
        return
    compiled = stmt.compile(dialect=conn.dialect, column_keys=list(rows[0]))  # type: ignore[attr-defined]
    names: Sequence[str] = compiled.positiontup or ()
    first = compiled.construct_params(dict(rows[0]))  # raises, naming it, for a parameter no row gives
    # the dialect's own form of each type (a datetime on SQLite is text in SQLAlchemy's format, not the driver's)
    processors = [compiled.binds[name].type.dialect_impl(conn.dialect).bind_processor(conn.dialect) for name in names]
    # per parameter: (name, its processor, True when each row gives it), else its constant, processed once
    plan: list[tuple[str, Callable[[Any], Any] | None, bool]] = []
    constants: dict[str, Any] = {}
    for name, processor in zip(names, processors, strict=True):
        per_row = name in rows[0]
        plan.append((name, processor, per_row))
        if not per_row:
            constants[name] = processor(first[name]) if processor else first[name]
    tuples = [
        tuple(
            ((processor(row[name]) if processor else row[name]) if per_row else constants[name])
            for name, processor, per_row in plan
        )
        for row in rows
    ]
    conn.exec_driver_sql(compiled.string, tuples)
