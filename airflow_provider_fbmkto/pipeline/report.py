"""Report: one summary per run -- counts per kind and status, failures with Marketo's reasons, budget used.

Logged as a readable table, saved as JSON under ``$AIRFLOW_HOME/fbmkto/reports/<account>/``, recorded in the
run log (the status page reads it), and returned (small) for XCom. E-mail addresses are shown (they are
what an operator searches for); no token or secret is ever part of a ledger row, so none can appear here.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_fbmkto.pipeline.context import RunContext
    from airflow_provider_fbmkto.state.db import StateDB

KINDS = ("company", "lead", "activity", "list")
STATUSES = ("written", "skipped", "failed", "pending", "in_flight")


def build_report(
    db: StateDB,
    ctx: RunContext,
    *,
    steps: dict[str, Any],
    budget_used: int | None,
    daily_budget: int | None,
) -> dict[str, Any]:
    """The run's summary (JSON-ready)."""
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
        for r in db.ledger.failures(ctx.name, limit=50)
    ]
    return {
        "account": ctx.name,
        "run_id": ctx.run_id,
        "window": {"start": ctx.window.start.isoformat(), "end": ctx.window.end.isoformat()},
        "dry_run": ctx.dry_run,
        "this_run": {k: dict(v) for k, v in sorted(table.items())},
        "ledger_totals": {f"{k}:{s}": n for (k, s), n in sorted(totals.items())},
        "failures": failures,
        "marketo_budget": {
            "used_today": budget_used,
            "daily_budget": daily_budget,
            "left": None if budget_used is None or daily_budget is None else max(0, daily_budget - budget_used),
        },
        "steps": steps,
    }


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
    budget = report["marketo_budget"]
    lines.append(f"Marketo calls today: {budget['used_today']} of {budget['daily_budget']} (left {budget['left']})")
    if report["failures"]:
        lines.append(f"{len(report['failures'])} rows need attention (skipped/failed), first ones:")
        lines += [f"  {f['status']:<8} {f['key']}: {f['reason']}" for f in report["failures"][:10]]
    return "\n".join(lines)


def save_report(report: dict[str, Any], home: Path) -> Path:
    safe_run = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in report["run_id"])
    path: Path = Path(home) / "fbmkto" / "reports" / report["account"] / f"{safe_run}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True))
    return path
