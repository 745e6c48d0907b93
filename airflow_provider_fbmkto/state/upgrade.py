"""In-place upgrades of older state DB schemas (run by ``StateDB.create_all`` inside its transaction and lock).

New tables come from ``create_all``; here columns are added to existing tables and new state is seeded.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Connection, Index, func, insert, inspect, select

from airflow_provider_fbmkto.state.mirror import FreshBooksRecordRow
from airflow_provider_fbmkto.state.models import SyncRun
from airflow_provider_fbmkto.state.scope import ScopeRow


def upgrade(conn: Connection, version: int) -> None:
    """Bring a state DB of an older schema version up to date (inside ``create_all``'s transaction and lock)."""
    if version < 2:
        # 2: ledger rows remember when their batch went out (the loader's late-write wait needs it); stored
        # tokens remember that FreshBooks refused them (the status page shows it without calling FreshBooks).
        timestamp = "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
        for table, column, kind in (
            ("fbmkto_ledger", "sent_at", timestamp),
            ("fbmkto_oauth_tokens", "refused", "TEXT"),
        ):
            if column not in {c["name"] for c in inspect(conn).get_columns(table)}:
                conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    if version < 3:
        _upgrade_to_scopes(conn)


def _upgrade_to_scopes(conn: Connection) -> None:
    """3: account scopes (tables created by ``create_all``), seeded from the successful runs so far, so the first
    run after the upgrade plans late facts of everything the account's runs covered before; the mirror
    remembers a client's previous e-mail until a run has moved its lead (``moved_from``)."""
    if "moved_from" not in {c["name"] for c in inspect(conn).get_columns(FreshBooksRecordRow.__tablename__)}:
        conn.exec_driver_sql(f"ALTER TABLE {FreshBooksRecordRow.__tablename__} ADD COLUMN moved_from TEXT")
    for index in FreshBooksRecordRow.__table_args__:
        if isinstance(index, Index):
            index.create(conn, checkfirst=True)
    covered = conn.execute(
        select(SyncRun.account, func.min(SyncRun.window_start), func.max(SyncRun.window_end))
        .where(SyncRun.status == "success", SyncRun.window_start.is_not(None), SyncRun.window_end.is_not(None))
        .group_by(SyncRun.account)
    ).all()
    known = set(conn.execute(select(ScopeRow.account)).scalars())
    now = datetime.now(timezone.utc)
    rows = [
        {"account": a, "horizon": h, "frontier": f, "updated_at": now}
        for a, h, f in covered
        if a not in known and h is not None and f is not None
    ]
    if rows:
        conn.execute(insert(ScopeRow), rows)
