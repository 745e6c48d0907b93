"""What the status page shows, read from the accounts config, the state DB and the Marketo connection.

No HTML here (see :mod:`.status_render`) and no Airflow auth (see :mod:`.status_airflow`): every function takes
the state DB and the accounts, so tests build both in a temporary directory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from airflow_provider_fbmkto.exceptions import FbmktoError

if TYPE_CHECKING:
    from airflow_provider_fbmkto.state import RunRecord, StateDB
    from airflow_provider_fbmkto.sync.config import AccountConfig

log = logging.getLogger(__name__)

#: Kinds in the order the loader writes them (and the page shows them).
KINDS = ("company", "lead", "activity", "list")
#: The statuses the page counts per kind.
SHOWN_STATUSES = ("written", "skipped", "failed")
#: Statuses of rows a "replay failed" run sends again.
REPLAYABLE = ("failed", "skipped")
CHART_DAYS = 14
#: Most rows of one status read for the failures table (they are sorted by recency in memory).
MAX_SCAN = 10_000
WEEK = timedelta(days=7)

Counts = dict[str, dict[str, int]]
"""kind -> status -> rows."""


@dataclass(frozen=True)
class TokenHealth:
    """The FreshBooks authorization of one connection, as the state DB knows it.

    :param level: ``ok``, ``warn`` or ``error``.
    :param message: one sentence for the operator.
    :param fix: the exact command that fixes it, when one does.
    """

    level: str
    message: str
    fix: str | None = None


@dataclass(frozen=True)
class BudgetStatus:
    """Marketo calls spent today on the account's instance (shared by every account writing there).

    :param error: why the numbers are unknown (e.g. the connection is missing), else ``None``.
    """

    instance: str | None = None
    used: int | None = None
    daily_budget: int | None = None
    usable: int | None = None
    resets_at: datetime | None = None
    error: str | None = None

    @property
    def fraction(self) -> float | None:
        if self.used is None or not self.usable:
            return None
        return min(1.0, self.used / self.usable)


@dataclass(frozen=True)
class AccountStatus:
    """One row of the status page."""

    name: str
    dag_id: str
    freshbooks_conn_id: str
    marketo_conn_id: str
    last_success: RunRecord | None
    last_run: RunRecord | None
    last_run_counts: Counts
    week_counts: Counts
    needs_attention: int
    token: TokenHealth
    budget: BudgetStatus
    daily: dict[date, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class FailureRow:
    """One row of the failures table."""

    account: str
    key: str
    kind: str
    status: str
    attempts: int
    reason: str | None
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True)
class AccountsFile:
    """The accounts config as the page sees it: the valid accounts and the problems of the others."""

    path: Path
    accounts: Sequence[AccountConfig]
    problems: Sequence[str]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# ------------------------------------------------------------------------------------------------ accounts


def load_accounts(dags_folder: str | None = None, environ: dict[str, str] | None = None) -> AccountsFile:
    """The accounts config (``FBMKTO_CONFIG`` or ``<dags folder>/fbmkto_accounts.yaml``), never raising.

    :param dags_folder: Airflow's DAGs folder; default from ``[core] dags_folder``.
    """
    from airflow_provider_fbmkto.sync.config import config_path, load_config_collecting

    if dags_folder is None:
        try:
            from airflow.configuration import conf

            dags_folder = conf.get("core", "dags_folder", fallback="") or "."
        except ImportError:  # pragma: no cover - Airflow is a dependency
            dags_folder = "."
    path = config_path(dags_folder, dict(os.environ if environ is None else environ))
    if not path.is_file():
        return AccountsFile(path, [], [f"{path}: no accounts config here; create it or set FBMKTO_CONFIG to its path"])
    try:
        accounts, errors = load_config_collecting(path)
    except FbmktoError as exc:
        return AccountsFile(path, [], [str(exc)])
    return AccountsFile(path, accounts, [str(e) for e in errors])


# ------------------------------------------------------------------------------------------------- counts


def as_table(raw: dict[tuple[str, str], int]) -> Counts:
    """``{(kind, status): n}`` from the ledger as ``{kind: {status: n}}``."""
    table: Counts = {}
    for (kind, status), n in raw.items():
        table.setdefault(kind, {})[status] = int(n)
    return table


def run_counts(db: StateDB, account: str, run: RunRecord | None) -> Counts:
    """Counts of the run: its saved report's ``this_run`` when it has one, else the ledger rows it last touched."""
    if run is None:
        return {}
    summary = run.summary or {}
    this_run = summary.get("this_run")
    if isinstance(this_run, dict):
        return {str(k): {str(s): int(n) for s, n in v.items()} for k, v in this_run.items() if isinstance(v, dict)}
    return as_table(db.ledger.counts(account, run_id=run.run_id))


def daily_written(db: StateDB, account: str, *, now: datetime, days: int = CHART_DAYS) -> dict[date, dict[str, int]]:
    """Ledger rows written per UTC day and kind over the last ``days`` days (today included), oldest first.

    Counts each row on the day it was last written (a re-written company counts on its latest day).
    """
    from airflow_provider_fbmkto.state.models import LedgerEntry

    first = (now.astimezone(timezone.utc) - timedelta(days=days - 1)).date()
    since = datetime(first.year, first.month, first.day, tzinfo=timezone.utc)
    column = LedgerEntry.written_at
    if db.dialect == "postgresql":
        day_expr: Any = func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    else:  # SQLite stores naive UTC ISO text: its first ten characters are the date
        day_expr = func.substr(column, 1, 10)
    stmt = (
        select(LedgerEntry.kind, day_expr, func.count())
        .where(LedgerEntry.account == account, LedgerEntry.status == "written", column >= since)
        .group_by(LedgerEntry.kind, day_expr)
    )
    out: dict[date, dict[str, int]] = {first + timedelta(days=i): {} for i in range(days)}
    with db.read_tx() as conn:
        for kind, day_text, n in conn.execute(stmt):
            day = date.fromisoformat(str(day_text)[:10])
            if day in out:
                out[day][str(kind)] = out[day].get(str(kind), 0) + int(n)
    return out


# ------------------------------------------------------------------------------------------------ health


def token_health(db: StateDB, conn_id: str, *, now: datetime) -> TokenHealth:
    """What the state DB says about the FreshBooks authorization of ``conn_id`` (no call to FreshBooks)."""
    fix = f"fbmkto authorize --conn-id {conn_id}"
    try:
        pair = db.tokens.load(conn_id)
    except FbmktoError as exc:
        return TokenHealth("error", str(exc), fix)
    if pair is None:
        return TokenHealth("error", f"FreshBooks connection {conn_id} was never authorized", fix)
    refused = db.tokens.refused(conn_id)
    if refused:
        return TokenHealth("error", refused, fix)
    if pair.expires_within(0, now=now):
        return TokenHealth(
            "ok",
            f"authorized; the access token expired {_ago(now - pair.expires_at)} ago and is refreshed by the next "
            "run (if that run fails with 'spent or revoked', re-authorize)",
            None,
        )
    return TokenHealth("ok", f"authorized; access token valid until {pair.expires_at:%Y-%m-%d %H:%M} UTC", None)


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{max(1, seconds // 60)} min"
    if seconds < 86400 * 2:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def probe_token(conn_id: str, *, state_conn_id: str) -> TokenHealth:
    """Ask FreshBooks (``users/me`` with the stored access token; never spends the refresh token)."""
    from airflow_provider_fbmkto.hooks.freshbooks import FreshBooksHook
    from airflow_provider_fbmkto.state import StateDB

    fix = f"fbmkto authorize --conn-id {conn_id}"
    try:
        hook = FreshBooksHook(conn_id, state=StateDB.from_airflow(conn_id=state_conn_id))
        ok, message = hook.test_connection()
    except Exception as exc:  # the page reports any failure as text; it must not 500
        log.warning("fbmkto status: probing FreshBooks connection %s failed: %s", conn_id, type(exc).__name__)
        return TokenHealth("error", f"could not check connection {conn_id}: {exc}", fix)
    if ok:
        return TokenHealth("ok", message, None)
    revoked = any(word in message.lower() for word in ("401", "unauthori", "revoked", "invalid_grant", "expired"))
    return TokenHealth("error", message, fix if revoked or "authorize" in message else None)


def marketo_budget(db: StateDB, conn_id: str, *, now: datetime, state_conn_id: str) -> BudgetStatus:
    """Today's calls against the budget of the Marketo instance behind ``conn_id``."""
    from airflow_provider_fbmkto.hooks.marketo import MarketoHook
    from airflow_provider_fbmkto.state import next_reset

    try:
        creds = MarketoHook(conn_id, state_conn_id=state_conn_id, budget=db.budget).creds
    except Exception as exc:  # a missing/invalid connection is shown, not raised
        message = str(exc) if isinstance(exc, FbmktoError) else f"connection {conn_id!r}: {type(exc).__name__}"
        if "isn't defined" in str(exc) or type(exc).__name__ == "AirflowNotFoundException":
            message = f"Marketo connection {conn_id!r} does not exist; add it (Admin > Connections)"
        return BudgetStatus(error=message)
    return BudgetStatus(
        instance=creds.instance,
        used=db.budget.used(creds.instance, now=now),
        daily_budget=creds.daily_budget,
        usable=creds.budget_limit,
        resets_at=next_reset(now),
    )


# ------------------------------------------------------------------------------------------------ collect


def account_status(
    db: StateDB,
    acct: AccountConfig,
    *,
    now: datetime,
    state_conn_id: str = "fbmkto_state",
    budget: Callable[[str], BudgetStatus] | None = None,
) -> AccountStatus:
    """Everything the page shows for one account.

    :param budget: Marketo conn id -> budget status (default: :func:`marketo_budget`, reading the connection).
    """
    recent = db.runs.recent(acct.name, limit=1)
    last_run = recent[0] if recent else None
    week = as_table(db.ledger.counts(acct.name, since=now - WEEK))
    totals = db.ledger.counts(acct.name)
    attention = sum(n for (_kind, status), n in totals.items() if status in REPLAYABLE)
    get_budget = budget or (lambda conn_id: marketo_budget(db, conn_id, now=now, state_conn_id=state_conn_id))
    return AccountStatus(
        name=acct.name,
        dag_id=acct.dag_id,
        freshbooks_conn_id=acct.freshbooks_conn_id,
        marketo_conn_id=acct.marketo_conn_id,
        last_success=db.runs.last_success(acct.name),
        last_run=last_run,
        last_run_counts=run_counts(db, acct.name, last_run),
        week_counts=week,
        needs_attention=attention,
        token=token_health(db, acct.freshbooks_conn_id, now=now),
        budget=get_budget(acct.marketo_conn_id),
        daily=daily_written(db, acct.name, now=now),
    )


def failure_rows(
    db: StateDB,
    accounts: Sequence[str],
    *,
    kind: str | None = None,
    status: str | None = None,
    limit: int = 200,
) -> list[FailureRow]:
    """Skipped and failed ledger rows of ``accounts`` (most recent first), optionally of one kind/status."""
    rows: list[FailureRow] = []
    for account in accounts:
        found = (
            db.ledger.failures(account, kind=kind, limit=limit)
            if status is None
            else list(islice(db.ledger.iter_rows(account, kind, status), MAX_SCAN))
        )
        for r in found:
            rows.append(
                FailureRow(
                    account=account,
                    key=r.key,
                    kind=r.kind,
                    status=str(r.status),
                    attempts=r.attempts,
                    reason=r.last_error,
                    first_seen=r.created_at,
                    last_seen=r.updated_at,
                )
            )
    rows.sort(key=lambda f: (f.last_seen, f.key), reverse=True)
    return rows[:limit]
