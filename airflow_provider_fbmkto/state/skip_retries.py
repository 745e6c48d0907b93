"""Automatic retries of skipped ledger rows whose cause may go away by itself, counted per row and bounded.

A row Marketo skipped for a reason that can heal without anyone touching the row ("no lead in Marketo" in an
update-only account, an activity type approved since, a field created since) is put back to pending by a later
run's load, at most ``limit`` times; after that it stays skipped until a manual replay (``replay_failed``, the
status page's button, ``fbmkto ledger replay``), which also starts its count again. Which reasons may heal is the
pipeline's call (:func:`airflow_provider_fbmkto.pipeline.reasons.heals_by_itself`); this store only counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Integer, String, Text, delete, select, update
from sqlalchemy.orm import Mapped, mapped_column

from airflow_provider_fbmkto.state._util import CHUNK, chunked, utcnow
from airflow_provider_fbmkto.state.ledger_types import LedgerStatus
from airflow_provider_fbmkto.state.models import Base, LedgerEntry, UTCDateTime

if TYPE_CHECKING:
    from airflow_provider_fbmkto.state.db import StateDB


class SkipRetryRow(Base):
    """How many times a skipped ledger row was put back to pending automatically (since its last replay)."""

    __tablename__ = "fbmkto_skip_retries"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    account: Mapped[str] = mapped_column(String(128), index=True)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


@dataclass(frozen=True, slots=True)
class Requeued:
    """The outcome of :meth:`SkipRetries.requeue`.

    :param requeued: skipped rows put back to pending now.
    :param exhausted: skipped rows whose cause may heal but whose automatic retries are used up (they wait for a
        replay).
    """

    requeued: int
    exhausted: int


class SkipRetries:
    """Counts and performs the bounded automatic retries of skipped rows."""

    def __init__(self, db: StateDB) -> None:
        self._db = db

    def requeue(self, account: str, heals: Callable[[str], bool], *, limit: int) -> Requeued:
        """Put the account's skipped rows whose reason ``heals`` back to pending, each at most ``limit`` times.

        One transaction per chunk of rows; a row that stopped being skipped meanwhile (a concurrent replay) is left
        alone and not counted.

        :param heals: reason -> whether its cause may go away by itself.
        :param limit: automatic retries per row (0: never).
        """
        written = select(LedgerEntry.key).where(
            LedgerEntry.account == account, LedgerEntry.status == LedgerStatus.WRITTEN.value
        )
        with self._db.write_tx() as conn:  # a row written since starts afresh if it is ever skipped again
            conn.execute(delete(SkipRetryRow).where(SkipRetryRow.account == account, SkipRetryRow.key.in_(written)))
        candidates = [
            r.key
            for r in self._db.ledger.iter_rows(account, status=LedgerStatus.SKIPPED)
            if r.last_error is not None and heals(r.last_error)
        ]
        requeued = exhausted = 0
        for chunk in chunked(candidates, CHUNK):
            now = utcnow()
            with self._db.write_tx() as conn:
                counts = {
                    k: int(n)
                    for k, n in conn.execute(
                        select(SkipRetryRow.key, SkipRetryRow.retries).where(SkipRetryRow.key.in_(chunk))
                    )
                }
                due = [k for k in chunk if counts.get(k, 0) < limit]
                exhausted += len(chunk) - len(due)
                if not due:
                    continue
                moved = list(
                    conn.execute(
                        update(LedgerEntry)
                        .where(LedgerEntry.key.in_(due), LedgerEntry.status == LedgerStatus.SKIPPED.value)
                        .values(status=LedgerStatus.PENDING.value, updated_at=now)
                        .returning(LedgerEntry.key)
                    ).scalars()
                )
                if not moved:
                    continue
                known = [k for k in moved if k in counts]
                if known:
                    conn.execute(
                        update(SkipRetryRow)
                        .where(SkipRetryRow.key.in_(known))
                        .values(retries=SkipRetryRow.retries + 1, updated_at=now)
                    )
                fresh = [
                    {"key": k, "account": account, "retries": 1, "updated_at": now} for k in moved if k not in counts
                ]
                if fresh:
                    conn.execute(self._db.insert(SkipRetryRow).on_conflict_do_nothing(), fresh)
                requeued += len(moved)
        return Requeued(requeued, exhausted)

    def counts(self, keys: Iterable[str]) -> dict[str, int]:
        """Automatic retries so far per key (keys never retried are absent)."""
        found: dict[str, int] = {}
        with self._db.read_tx() as conn:
            for chunk in chunked(dict.fromkeys(keys), CHUNK):
                stmt = select(SkipRetryRow.key, SkipRetryRow.retries).where(SkipRetryRow.key.in_(chunk))
                found.update({k: int(n) for k, n in conn.execute(stmt)})
        return found

    def forget(self, account: str, kind: str | None = None) -> int:
        """Start the counts of the account's rows (of ``kind``) again: a manual replay gives them new retries."""
        where = [SkipRetryRow.account == account]
        if kind is not None:
            of_kind = select(LedgerEntry.key).where(LedgerEntry.account == account, LedgerEntry.kind == kind)
            where.append(SkipRetryRow.key.in_(of_kind))
        with self._db.write_tx() as conn:
            return conn.execute(delete(SkipRetryRow).where(*where)).rowcount
