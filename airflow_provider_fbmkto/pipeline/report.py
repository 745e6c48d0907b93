"""Report: one summary per run -- counts per kind and status, failures with Marketo's reasons, budget used.

Logged as a readable table, stored in the state DB with the run (``fbmkto_runs.summary``: the status page and
``fbmkto ledger report`` read it from there, whichever worker ran the task), also saved as JSON under
``$AIRFLOW_HOME/fbmkto/reports/<account>/`` on the worker, and returned (small) for XCom. E-mail addresses are
shown (they are what an operator searches for); no token or secret is ever part of a ledger row, so none can
appear here.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_fbmkto.pipeline.reasons import NO_LEAD

if TYPE_CHECKING:
    from airflow_provider_fbmkto.hooks.marketo import MarketoHook
    from airflow_provider_fbmkto.pipeline.context import RunContext
    from airflow_provider_fbmkto.state.db import StateDB

KINDS = ("company", "lead", "activity", "list")
#: Rows of this run's failures listed in the report (the counts cover them all).
MAX_FAILURES_SHOWN = 50
STATUSES = ("written", "skipped", "failed", "pending", "in_flight", "withdrawn")
#: What the map step reports about the account's records beyond ledger counts.
CHANGES = ("scope", "email_changes", "deleted_clients", "withdrawn", "too_old")


def build_report(
    db: StateDB,
    ctx: RunContext,
    *,
    steps: dict[str, Any],
    budget: dict[str, Any],
) -> dict[str, Any]:
    """The run's summary (JSON-ready); ``budget`` as :func:`budget_summary` gives it."""
    run_counts = db.ledger.counts(ctx.name, run_id=ctx.run_id)
    totals = db.ledger.counts(ctx.name)
    table: dict[str, dict[str, int]] = defaultdict(dict)
    for (kind, status), n in run_counts.items():
        table[kind][status] = n
    failures = [
        {
            "key": r.key,
            "kind": r.kind,
            "status": str(r.status),
            "attempts": r.attempts,
            "reason": r.last_error,
            "last_seen": r.updated_at.isoformat(),
        }
        for r in db.ledger.failures(ctx.name, run_id=ctx.run_id, limit=MAX_FAILURES_SHOWN)
    ]
    mapped = steps.get("map") or {}
    return {
        "account": ctx.name,
        "run_id": ctx.run_id,
        "window": {"start": ctx.window.start.isoformat(), "end": ctx.window.end.isoformat()},
        "dry_run": ctx.dry_run,
        "preview": mapped.get("preview") if ctx.dry_run else None,
        "changes": {k: mapped[k] for k in CHANGES if mapped.get(k)},
        "this_run": {k: dict(v) for k, v in sorted(table.items())},
        "ledger_totals": {f"{k}:{s}": n for (k, s), n in sorted(totals.items())},
        "webhook_events": webhook_events(db, ctx),
        "failures": failures,
        "marketo_budget": budget,
        "stopped": (steps.get("load") or {}).get("stopped"),
        "steps": steps,
    }


def budget_summary(hook: MarketoHook, ctx: RunContext, *, other_integrations: int | None) -> dict[str, Any]:
    """Today's Marketo budget as the report states it: the instance's usable budget (``daily_budget -
    budget_reserve``, less what other integrations spent today when the load read it), what this provider spent,
    and the account's share of it (``daily_budget_share``) with its own calls today.

    :param other_integrations: other API users' calls today (the load's reading of ``stats/usage.json``), or None.
    """
    creds = hook.creds
    usable = max(0, creds.budget_limit - (other_integrations or 0))
    used = hook.budget_used()
    share = ctx.account.daily_budget_share
    return {
        "used_today": used,
        "daily_budget": creds.daily_budget,
        "budget_reserve": creds.budget_reserve,
        "other_integrations": other_integrations,
        "usable": usable,
        "left": max(0, usable - used),
        "account_share": share,
        "account_limit": None if share is None else int(share * usable),
        "account_used": hook.budget.used_by_accounts(hook.instance).get(ctx.name, 0),
    }


def policy_breaches(db: StateDB, ctx: RunContext, report: dict[str, Any]) -> list[str]:
    """What this run left behind beyond the account's ``alerts`` thresholds (empty: within them).

    Rows waiting for their person in Marketo (update-only accounts) are expected, not alarming: not counted.
    """
    alerts = ctx.account.alerts
    left = db.ledger.failures(ctx.name, run_id=ctx.run_id, limit=1_000_000)
    skipped = sum(1 for r in left if str(r.status) == "skipped" and not str(r.last_error or "").startswith(NO_LEAD))
    failed = sum(1 for r in left if str(r.status) == "failed")
    out = []
    if skipped > alerts.max_skipped:
        out.append(f"{skipped} rows skipped by Marketo (alerts.max_skipped {alerts.max_skipped})")
    if failed > alerts.max_failed:
        out.append(f"{failed} rows failed (alerts.max_failed {alerts.max_failed})")
    return out


def render_table(report: dict[str, Any]) -> str:
    """The report as a few readable lines for the task log."""
    lines = [
        f"fbmkto sync report: account {report['account']}, window {report['window']['start']} .. "
        f"{report['window']['end']}{' (dry run: nothing written)' if report['dry_run'] else ''}",
        f"{'kind':<10}" + "".join(f"{s:>11}" for s in STATUSES),
    ]
    for kind in KINDS:
        row = report["this_run"].get(kind, {})
        lines.append(f"{kind:<10}" + "".join(f"{row.get(s, 0):>11}" for s in STATUSES))
    for kind, seen in sorted((report.get("preview") or {}).items()):
        lines.append(f"would write {kind}: {seen['new']} new, {seen['changed']} changed; e.g.")
        lines += [f"  {example}" for example in seen["examples"]]
    changes = report.get("changes") or {}
    lines += [
        f"e-mail change: client {m['client']} {m['from']} -> {m['to']} (the old lead leaves the segment lists)"
        for m in changes.get("email_changes", [])[:20]
    ]
    lines += [
        f"deleted client {d['client']} ({d['email']}): its lead leaves the segment lists"
        for d in changes.get("deleted_clients", [])[:20]
    ]
    if changes.get("withdrawn"):
        lines.append(f"{changes['withdrawn']} unsent activities withdrawn: their FreshBooks record was deleted")
    if old := changes.get("too_old"):
        lines.append(
            f"{old['count']} activities dated before {old['before']} not sent: Marketo keeps activities 25 months"
        )
    lines += budget_lines(report["marketo_budget"])
    if stopped := report.get("stopped"):
        lines.append(f"load stopped: {stopped['message']}; {stopped['rows_waiting']} rows wait for the next run")
    if report["failures"]:
        lines.append(f"{len(report['failures'])} rows need attention (skipped/failed), first ones:")
        lines += [f"  {f['status']:<8} {f['key']}: {f['reason']}" for f in report["failures"][:10]]
    events = report.get("webhook_events") or {}
    for key, outcome in (("failed", "marked failed, no run reads it again"), ("retrying", "the next run tries again")):
        lines += [
            f"webhook event {e['event']} ({e['name']} {e['object_id']}) not read ({e['attempts']} failed read(s); "
            f"{outcome}): {e['reason']}"
            for e in events.get(key, [])[:10]
        ]
    return "\n".join(lines)


def budget_lines(budget: dict[str, Any]) -> list[str]:
    """The budget part of :func:`render_table` (also for reports saved before the usable budget was recorded)."""
    usable = budget.get("usable", budget.get("daily_budget"))
    how = f"daily_budget {budget['daily_budget']}"
    if budget.get("budget_reserve"):
        how += f" - budget_reserve {budget['budget_reserve']}"
    if budget.get("other_integrations"):
        how += f" - {budget['other_integrations']} calls of other integrations"
    lines = [f"Marketo calls today: {budget['used_today']} of {usable} usable ({how}; left {budget['left']})"]
    if budget.get("account_share") is not None:
        lines.append(
            f"this account's calls today: {budget['account_used']} of its share {budget['account_limit']} "
            f"(daily_budget_share {budget['account_share']})"
        )
    return lines


def save_report(report: dict[str, Any], home: Path) -> Path:
    safe_run = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in report["run_id"])
    path: Path = Path(home) / "fbmkto" / "reports" / report["account"] / f"{safe_run}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True))
    return path


def webhook_events(db: StateDB, ctx: RunContext) -> dict[str, list[dict[str, Any]]]:
    """This run's webhook events whose record could not be read: ``failed`` (given up: no run reads them again)
    and ``retrying`` (the next run reads them again); see :mod:`airflow_provider_fbmkto.state.events`."""
    out: dict[str, list[dict[str, Any]]] = {"failed": [], "retrying": []}
    for f in db.events.failures(ctx.name, run_id=ctx.run_id, limit=MAX_FAILURES_SHOWN):
        out["failed" if f.failed else "retrying"].append(
            {
                "event": f.event_id,
                "name": f.name,
                "object_id": f.object_id,
                "received_at": f.received_at.isoformat(),
                "attempts": f.attempts,
                "reason": f.reason,
            }
        )
    return out
