"""The scope store: per account, the span its runs have covered, ``[horizon, frontier)`` (see ``sync/scope.py``).

A run extends the scope *before* it plans, atomically, and learns the scope as it was just before: the part
its window adds is what it must plan by date. Concurrent runs of one account therefore split the new span
between them, and each plans the changed records it pulled against a scope that already includes what the
others added (they merged their records into the mirror before extending). The scope a run first found is
kept per run, so a retried ``map`` task plans the same span again instead of an empty one.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import String, select, update
from sqlalchemy.orm import Mapped, mapped_column

from airflow_provider_fbmkto.state._util import utcnow
from airflow_provider_fbmkto.state.models import Base, UTCDateTime
from airflow_provider_fbmkto.sync.scope import Scope

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from airflow_provider_fbmkto.state.db import StateDB
    from airflow_provider_fbmkto.sync.window import Window


class ScopeRow(Base):
    """The scope of one account."""

    __tablename__ = "fbmkto_scope"

    account: Mapped[str] = mapped_column(String(128), primary_key=True)
    horizon: Mapped[datetime] = mapped_column(UTCDateTime())
    frontier: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ScopeClaim(Base):
    """The scope one run found before extending it (``NULL``: the account had none: its first run)."""

    __tablename__ = "fbmkto_scope_runs"

    account: Mapped[str] = mapped_column(String(128), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    horizon: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    frontier: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Scopes:
    """Read and extend account scopes."""

    def __init__(self, db: StateDB) -> None:
        self._db = db

    def get(self, account: str) -> Scope | None:
        """The account's scope, or ``None`` before its first run."""
        with self._db.read_tx() as conn:
            row = conn.execute(select(ScopeRow.horizon, ScopeRow.frontier).where(ScopeRow.account == account)).first()
        return Scope(row.horizon, row.frontier) if row is not None else None

    def extend(self, account: str, run_id: str, window: Window) -> tuple[Scope | None, Scope]:
        """Add ``window`` to the scope (the hull of both); return ``(before, after)``.

        ``before`` is the scope this run found the first time it extended it (the same on a retry);
        ``after`` the scope now, with every run's window so far.
        """
        now = utcnow()
        with self._db.write_tx() as conn:
            current = self._locked(conn, account)
            if current is None:
                inserted = conn.execute(
                    self._db.insert(ScopeRow)
                    .values(account=account, horizon=window.start, frontier=window.end, updated_at=now)
                    .on_conflict_do_nothing(index_elements=[ScopeRow.account])
                ).rowcount
                if not inserted:  # another run created it first (PostgreSQL): extend theirs
                    current = self._locked(conn, account)
            after = current.extended(window) if current is not None else Scope.of(window)
            if current is not None and after != current:
                conn.execute(
                    update(ScopeRow)
                    .where(ScopeRow.account == account)
                    .values(horizon=after.horizon, frontier=after.frontier, updated_at=now)
                )
            claim = conn.execute(
                select(ScopeClaim.horizon, ScopeClaim.frontier).where(
                    ScopeClaim.account == account, ScopeClaim.run_id == run_id
                )
            ).first()
            if claim is None:
                conn.execute(
                    self._db.insert(ScopeClaim).values(
                        account=account,
                        run_id=run_id,
                        horizon=None if current is None else current.horizon,
                        frontier=None if current is None else current.frontier,
                        created_at=now,
                    )
                )
                return current, after
        if claim.horizon is None or claim.frontier is None:
            return None, after
        return Scope(claim.horizon, claim.frontier), after

    @staticmethod
    def _locked(conn: Connection, account: str) -> Scope | None:
        row = conn.execute(
            select(ScopeRow.horizon, ScopeRow.frontier).where(ScopeRow.account == account).with_for_update()
        ).first()
        return Scope(row.horizon, row.frontier) if row is not None else None
