"""A small log of sync runs per account: window, outcome, summary (for "since last success" and the status page)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from airflow_provider_fbmkto.state._util import as_utc, utcnow
from airflow_provider_fbmkto.state.models import SyncRun

if TYPE_CHECKING:
    from airflow_provider_fbmkto.state.db import StateDB

#: ``dry_run``: a dry run that completed -- never a "last success" (it sent nothing).
RUN_STATUSES = frozenset({"running", "success", "failed", "dry_run"})


@dataclass(frozen=True)
class RunRecord:
    """One logged run."""

    account: str
    run_id: str
    window_start: datetime | None
    window_end: datetime | None
    status: str
    summary: dict[str, Any] | None
    started_at: datetime
    finished_at: datetime | None


_COLUMNS = tuple(SyncRun.__table__.c)


class RunLog:
    """Start/finish records of sync runs."""

    def __init__(self, db: StateDB) -> None:
        self._db = db

    def start(
        self,
        account: str,
        run_id: str,
        *,
        window_start: datetime | None = None,
        window_end: datetime | None = None,
        now: datetime | None = None,
    ) -> None:
        """Record (or restart, for a retried task) run ``run_id`` of ``account`` as running."""
        started = as_utc(now, "now") if now is not None else utcnow()
        values = {
            "account": account,
            "run_id": run_id,
            "window_start": None if window_start is None else as_utc(window_start, "window_start"),
            "window_end": None if window_end is None else as_utc(window_end, "window_end"),
            "status": "running",
            "summary": None,
            "started_at": started,
            "finished_at": None,
        }
        stmt = self._db.insert(SyncRun).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[SyncRun.account, SyncRun.run_id],
            set_={k: stmt.excluded[k] for k in ("window_start", "window_end", "status", "started_at", "finished_at")},
        )
        with self._db.write_tx() as conn:
            conn.execute(stmt)

    def finish(
        self,
        account: str,
        run_id: str,
        *,
        status: str,
        summary: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> None:
        """Record the outcome (``success``, ``failed`` or ``dry_run``) and JSON summary of a started run."""
        if status not in RUN_STATUSES:
            raise ValueError(f"run status must be one of {sorted(RUN_STATUSES)}, not {status!r}")
        finished = as_utc(now, "now") if now is not None else utcnow()
        with self._db.write_tx() as conn:
            conn.execute(
                update(SyncRun)
                .where(SyncRun.account == account, SyncRun.run_id == run_id)
                .values(status=status, summary=summary, finished_at=finished)
            )

    def get(self, account: str, run_id: str) -> RunRecord | None:
        """The record of one run."""
        with self._db.read_tx() as conn:
            found = conn.execute(select(*_COLUMNS).where(SyncRun.account == account, SyncRun.run_id == run_id)).first()
        return RunRecord(**found._asdict()) if found is not None else None

    def last_success(self, account: str) -> RunRecord | None:
        """The successful run with the latest window end (then finish time), if any."""
        stmt = (
            select(*_COLUMNS)
            .where(SyncRun.account == account, SyncRun.status == "success")
            .order_by(SyncRun.window_end.desc().nulls_last(), SyncRun.finished_at.desc())
            .limit(1)
        )
        with self._db.read_tx() as conn:
            found = conn.execute(stmt).first()
        return RunRecord(**found._asdict()) if found is not None else None

    def recent(self, account: str, *, limit: int = 20) -> list[RunRecord]:
        """The latest runs of ``account``, newest first."""
        stmt = select(*_COLUMNS).where(SyncRun.account == account).order_by(SyncRun.started_at.desc()).limit(limit)
        with self._db.read_tx() as conn:
            return [RunRecord(**r._asdict()) for r in conn.execute(stmt)]
