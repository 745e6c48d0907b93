"""``execute_many`` stores what ``conn.execute(stmt, rows)`` stores, value for value, on every backend."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import bindparam, func, select, text, update

from airflow_provider_fbmkto.state import StateDB
from airflow_provider_fbmkto.state.bulk import execute_many
from airflow_provider_fbmkto.state.mirror import FreshBooksRecordRow
from airflow_provider_fbmkto.state.models import LedgerEntry

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)  # no microseconds: the driver's own format would drop them
T1 = T0 + timedelta(microseconds=250)
BERLIN = timezone(timedelta(hours=1))


def ledger_rows() -> list[dict[str, Any]]:
    return [
        {
            "key": f"activity:acme:{i}",
            "account": "acme",
            "kind": "activity",
            "payload": {"n": i, "text": "Zoë\n", "nested": [1, None, {"a": True}]},
            "payload_hash": f"h{i}",
            "status": "pending",
            "attempts": 0,
            "run_id": "r1",
            "created_at": (T0, T1, T0.astimezone(BERLIN))[i % 3],
            "updated_at": T0,
        }
        for i in range(7)
    ]


def raw(db: StateDB, table: str) -> list[tuple[Any, ...]]:
    with db.read_tx() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2, 3"))]


@pytest.mark.parametrize("fast", [False, True])
def test_inserts_and_updates_store_what_sqlalchemy_stores(db_url: str, fast: bool, tmp_path: Any) -> None:
    # The same writes through SQLAlchemy (into a second database) and through execute_many compare equal as
    # stored: JSON text, datetimes in SQLAlchemy's own text format on SQLite, dates, NULLs, constants.
    reference = StateDB(f"sqlite:///{tmp_path}/reference.db") if db_url.startswith("sqlite") else None
    target = StateDB(db_url)
    for db in filter(None, (target, reference)):
        db.create_all()
    marks = [{"b_key": f"activity:acme:{i}", "b_mid": str(100 + i) if i % 2 else None} for i in range(0, 7, 2)]
    mark = (
        update(LedgerEntry)
        .where(LedgerEntry.key == bindparam("b_key"))
        .values(
            status="written",
            marketo_id=func.coalesce(bindparam("b_mid", type_=LedgerEntry.marketo_id.type), LedgerEntry.marketo_id),
            updated_at=T1,
            written_at=T1,
        )
    )
    records = [
        {
            "account": "acme",
            "kind": "invoice",
            "id": i,
            "client_id": 7,
            "event_date": date(2026, 1, i + 1),
            "due_date": None if i % 2 else date(2026, 2, 1),
            "data": {"id": i, "amount": "1.50"},
            "moved_from": None,
        }
        for i in range(4)
    ]

    def write(db: StateDB, through_bulk: bool) -> None:
        run = (
            (lambda conn, stmt, rows: execute_many(conn, stmt, rows))
            if through_bulk
            else (lambda conn, stmt, rows: conn.execute(stmt, rows))
        )
        with db.write_tx() as conn:
            run(conn, db.insert(LedgerEntry).on_conflict_do_nothing(index_elements=[LedgerEntry.key]), ledger_rows())
            run(conn, mark, marks)
            run(conn, db.insert(FreshBooksRecordRow), records)

    write(target, fast)
    if reference is not None:
        write(reference, False)
        assert raw(target, "fbmkto_ledger") == raw(reference, "fbmkto_ledger")
        assert raw(target, "fbmkto_fb_records") == raw(reference, "fbmkto_fb_records")
    with target.read_tx() as conn:
        got = {r.key: r for r in conn.execute(select(LedgerEntry))}
    assert {k: (r.status, r.marketo_id, r.created_at, r.written_at) for k, r in got.items()} == {
        f"activity:acme:{i}": (
            "written" if i % 2 == 0 else "pending",
            None,
            (T0, T1, T0)[i % 3],
            T1 if i % 2 == 0 else None,
        )
        for i in range(7)
    }
    assert got["activity:acme:1"].payload == {"n": 1, "text": "Zoë\n", "nested": [1, None, {"a": True}]}


def test_a_parameter_no_row_gives_is_refused(tmp_path: Any) -> None:
    db = StateDB(f"sqlite:///{tmp_path}/s.db")
    db.create_all()
    stmt = update(LedgerEntry).where(LedgerEntry.key == bindparam("b_key")).values(last_error=bindparam("b_error"))
    with pytest.raises(Exception, match="b_error"), db.write_tx() as conn:
        execute_many(conn, stmt, [{"b_key": "x"}])
