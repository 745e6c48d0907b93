"""Reads of the ledger for reports, the CLI and the status page: counts, failures, rows by key, Marketo ids."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from airflow_provider_fbmkto.state._util import CHUNK, as_utc, chunked
from airflow_provider_fbmkto.state.ledger_types import COLUMNS, LedgerRow, LedgerStatus, parse_status, row_from_db
from airflow_provider_fbmkto.state.models import LedgerEntry

if TYPE_CHECKING:
    from airflow_provider_fbmkto.state.db import StateDB


class LedgerReads:
    """Read-only queries over the ledger table (each its own short read transaction)."""

    def __init__(self, db: StateDB) -> None:
        self._db = db

    # ------------------------------------------------------------------------------------------- report

    def counts(
        self, account: str, *, run_id: str | None = None, since: datetime | None = None
    ) -> dict[tuple[str, str], int]:
        """Row counts per ``(kind, status)``; optionally only rows last touched by ``run_id`` or since ``since``."""
        where = [LedgerEntry.account == account]
        if run_id is not None:
            where.append(LedgerEntry.run_id == run_id)
        if since is not None:
            where.append(LedgerEntry.updated_at >= as_utc(since, "since"))
        stmt = (
            select(LedgerEntry.kind, LedgerEntry.status, func.count())
            .where(*where)
            .group_by(LedgerEntry.kind, LedgerEntry.status)
        )
        with self._db.read_tx() as conn:
            return {(kind, status): int(n) for kind, status, n in conn.execute(stmt)}

    def written_per_day(self, account: str, *, since: datetime) -> dict[tuple[date, str], int]:
        """Rows written per ``(UTC day, kind)`` since ``since``, each counted on the day it was last written (a
        re-written company counts on its latest day)."""
        column = LedgerEntry.written_at
        if self._db.dialect == "postgresql":
            day_expr: Any = func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
        else:  # SQLite stores naive UTC ISO text: its first ten characters are the date
            day_expr = func.substr(column, 1, 10)
        stmt = (
            select(LedgerEntry.kind, day_expr, func.count())
            .where(
                LedgerEntry.account == account,
                LedgerEntry.status == LedgerStatus.WRITTEN.value,
                column >= as_utc(since, "since"),
            )
            .group_by(LedgerEntry.kind, day_expr)
        )
        out: dict[tuple[date, str], int] = {}
        with self._db.read_tx() as conn:
            for kind, day_text, n in conn.execute(stmt):
                key = (date.fromisoformat(str(day_text)[:10]), str(kind))
                out[key] = out.get(key, 0) + int(n)
        return out

    def failures(
        self, account: str, *, kind: str | None = None, run_id: str | None = None, limit: int = 100
    ) -> list[LedgerRow]:
        """Failed and skipped rows with their reasons, most recently updated first (``run_id``: left by that run)."""
        where = [
            LedgerEntry.account == account,
            LedgerEntry.status.in_([LedgerStatus.FAILED.value, LedgerStatus.SKIPPED.value]),
        ]
        if kind is not None:
            where.append(LedgerEntry.kind == kind)
        if run_id is not None:
            where.append(LedgerEntry.run_id == run_id)
        stmt = select(*COLUMNS).where(*where).order_by(LedgerEntry.updated_at.desc(), LedgerEntry.key).limit(limit)
        with self._db.read_tx() as conn:
            return [row_from_db(r) for r in conn.execute(stmt)]

    def get(self, key: str) -> LedgerRow | None:
        """The row of ``key``, if any."""
        with self._db.read_tx() as conn:
            found = conn.execute(select(*COLUMNS).where(LedgerEntry.key == key)).first()
        return row_from_db(found) if found is not None else None

    def iter_rows(
        self,
        account: str,
        kind: str | None = None,
        status: LedgerStatus | str | Sequence[LedgerStatus | str] | None = None,
        *,
        chunk_size: int = 1000,
    ) -> Iterator[LedgerRow]:
        """All matching rows ordered by key, read in chunks (each its own short read transaction)."""
        where = [LedgerEntry.account == account]
        if kind is not None:
            where.append(LedgerEntry.kind == kind)
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            where.append(LedgerEntry.status.in_([parse_status(s).value for s in wanted]))
        after: str | None = None
        while True:
            stmt = select(*COLUMNS).where(*where)
            if after is not None:
                stmt = stmt.where(LedgerEntry.key > after)
            with self._db.read_tx() as conn:
                page = [row_from_db(r) for r in conn.execute(stmt.order_by(LedgerEntry.key).limit(chunk_size))]
            yield from page
            if len(page) < chunk_size:
                return
            after = page[-1].key

    def marketo_ids(self, keys: Iterable[str]) -> dict[str, str]:
        """Known Marketo ids by key (e.g. lead ids of ``lead:<acct>:<email>`` rows); keys without one are absent."""
        found: dict[str, str] = {}
        with self._db.read_tx() as conn:
            for chunk in chunked(dict.fromkeys(keys), CHUNK):
                stmt = select(LedgerEntry.key, LedgerEntry.marketo_id).where(
                    LedgerEntry.key.in_(chunk), LedgerEntry.marketo_id.is_not(None)
                )
                found.update({k: str(v) for k, v in conn.execute(stmt)})
        return found
