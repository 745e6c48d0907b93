"""What the status page shows, read from the accounts config, the state DB and the Marketo connection.

No HTML here (see :mod:`.status_render`) and no Airflow auth (see :mod:`.status_airflow`): every function takes
the state DB and the accounts, so tests build both in a temporary directory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_fbmkto.exceptions import FbmktoError
from airflow_provider_fbmkto.state_conn import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from airflow_provider_fbmkto.state import RunRecord, StateDB
    from airflow_provider_fbmkto.state.events import EventFailure
    from airflow_provider_fbmkto.sync.config_schema import AccountConfig

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
    #: the account's ``daily_budget_share``, its calls allowed today (share of ``usable``) and spent today
    share: float | None = None
    account_limit: int | None = None
    account_used: int | None = None

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
    #: what happens to the row next (:func:`next_step`).
    next_step: str = ""
    #: ``auto``: a later run sends it again by itself; ``replay``: it waits for a replay.
    retry: str = "replay"


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
    from airflow_provider_fbmkto.bundled import accounts_config_path
    from airflow_provider_fbmkto.sync.config import load_config_collecting

    path, _named = accounts_config_path(environ=environ, dags_folder=dags_folder)
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
    first = (now.astimezone(timezone.utc) - timedelta(days=days - 1)).date()
    since = datetime(first.year, first.month, first.day, tzinfo=timezone.utc)
    out: dict[date, dict[str, int]] = {first + timedelta(days=i): {} for i in range(days)}
    for (day, kind), n in db.ledger.written_per_day(account, since=since).items():
        if day in out:
            out[day][kind] = n
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
    state_conn_id: str = DEFAULT_CONN_ID,
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
    spent = get_budget(acct.marketo_conn_id)
    if spent.error is None and spent.instance is not None:
        share = acct.daily_budget_share
        spent = replace(
            spent,
            share=share,
            account_limit=None if share is None or spent.usable is None else int(share * spent.usable),
            account_used=db.budget.used_by_accounts(spent.instance, now=now).get(acct.name, 0),
        )
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
        budget=spent,
        daily=daily_written(db, acct.name, now=now),
    )


def next_step(status: str, reason: str | None, retries: int, limit: int) -> tuple[str, str]:
    """``(retry, sentence)``: whether a later run sends the row again by itself (``auto``) or it waits for a
    replay (``replay``), and what the operator reads.

    :param retries: automatic retries the (skipped) row had so far; ``limit``: the account's ``retry_skipped``.
    """
    from airflow_provider_fbmkto.pipeline.reasons import heals_by_itself

    if status == "failed":
        return "auto", "the next run sends it again"
    if not heals_by_itself(reason or ""):
        return "replay", "waits for a replay (fix the cause first)"
    left = max(0, limit - retries)
    if left:
        return "auto", f"retried automatically by the next run ({left} of {limit} automatic retries left)"
    return "replay", f"waits for a replay (its {limit} automatic retries are used up)"


def failure_rows(
    db: StateDB,
    accounts: Sequence[str],
    *,
    kind: str | None = None,
    status: str | None = None,
    limit: int = 200,
    retry_limits: Mapping[str, int] | None = None,
) -> list[FailureRow]:
    """Skipped and failed ledger rows of ``accounts`` (most recent first), optionally of one kind/status.

    :param retry_limits: account -> its ``retry_skipped`` (default 5), for each row's next step.
    """
    rows: list[FailureRow] = []
    for account in accounts:
        found = (
            db.ledger.failures(account, kind=kind, limit=limit)
            if status is None
            else list(islice(db.ledger.iter_rows(account, kind, status), MAX_SCAN))
        )
        retries = db.skip_retries.counts(r.key for r in found if str(r.status) == "skipped")
        cap = (retry_limits or {}).get(account, 5)
        for r in found:
            retry, step = next_step(str(r.status), r.last_error, retries.get(r.key, 0), cap)
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
                    next_step=step,
                    retry=retry,
                )
            )
    rows.sort(key=lambda f: (f.last_seen, f.key), reverse=True)
    return rows[:limit]


def event_failures(db: StateDB, accounts: Sequence[str], *, limit: int = 200) -> list[EventFailure]:
    """Webhook events of ``accounts`` whose record could not be read (marked failed, or still retried), latest
    first."""
    rows = [f for account in accounts for f in db.events.failures(account, limit=limit)]
    rows.sort(key=lambda f: (f.last_attempt_at, f.event_id), reverse=True)
    return rows[:limit]
