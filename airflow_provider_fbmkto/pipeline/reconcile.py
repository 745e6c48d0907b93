"""Reconcile: compare Marketo leads with FreshBooks clients (names, e-mails, company links).

Small accounts read their clients' leads by e-mail (300 a call); above ``reconcile.bulk_threshold`` e-mails
the operator runs a bulk lead export of leads updated since the watermark and defers until it completes
(:class:`~airflow_provider_fbmkto.triggers.marketo.MarketoBulkExportTrigger`), then compares the file.
Only leads changed in Marketo since the last reconcile are compared (all of them the first time).
With ``fix_marketo`` FreshBooks' values are written back to the leads (FreshBooks is the truth).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_fbmkto.state.mirror import FreshBooksMirror
from airflow_provider_fbmkto.sync.matching import match_clients
from airflow_provider_fbmkto.sync.reconcile import LEAD_FIELDS, Mismatch, compare, corrections

if TYPE_CHECKING:
    from airflow_provider_fbmkto.hooks.marketo import MarketoHook
    from airflow_provider_fbmkto.pipeline.context import RunContext
    from airflow_provider_fbmkto.state.db import StateDB

WATERMARK = "marketo_reconciled_until"
#: Bulk exports filter on at most 31 days of ``updatedAt``.
MAX_EXPORT_SPAN = timedelta(days=31)
EXPORT_FIELDS = (*LEAD_FIELDS, "updatedAt")


def _updated(lead: Mapping[str, Any]) -> datetime | None:
    raw = lead.get("updatedAt")
    if not raw:
        return None
    return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))


def _example(m: Mismatch) -> dict[str, Any]:
    return {
        "kind": m.kind.value,
        "email": m.email,
        "field": m.field,
        "freshbooks": m.freshbooks_value,
        "marketo": m.marketo_value,
    }


def needs_bulk(db: StateDB, ctx: RunContext) -> bool:
    """Whether the account has more client e-mails than reading by filter should handle."""
    return FreshBooksMirror(db).count(ctx.name, "client") > ctx.account.reconcile.bulk_threshold


def export_window(db: StateDB, ctx: RunContext) -> tuple[datetime, datetime]:
    """``[since, until)`` of ``updatedAt`` for a bulk export (clamped to Marketo's 31-day limit)."""
    since = db.watermarks.get(ctx.name, WATERMARK) or (ctx.now - MAX_EXPORT_SPAN)
    return max(since, ctx.now - MAX_EXPORT_SPAN), ctx.now


def reconcile(
    mkto: MarketoHook, db: StateDB, ctx: RunContext, leads: Iterable[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """Compare (and optionally fix); ``leads`` are given after a bulk export, else read by e-mail."""
    account = ctx.name
    since = db.watermarks.get(account, WATERMARK)
    clients = list(FreshBooksMirror(db).clients(account))
    emails = sorted({c.email.strip().lower() for c in clients if c.email.strip()})
    if leads is None:
        leads = mkto.get_leads_by_email(emails, [*LEAD_FIELDS, "updatedAt"]) if emails else []
    wanted = set(emails)
    changed = [
        lead
        for lead in leads
        if str(lead.get("email", "")).lower() in wanted and (since is None or (_updated(lead) or ctx.now) >= since)
    ]
    matches = match_clients(clients, ctx.account.matching.rules, ctx.account.matching.free_mail)
    compared_emails = {str(lead.get("email", "")).lower() for lead in changed}
    scope = clients if since is None else [c for c in clients if c.email.strip().lower() in compared_emails]
    mismatches = compare(scope, changed, companies=matches)
    fixed = 0
    if ctx.account.reconcile.fix_marketo and not ctx.dry_run:
        fixes = corrections(mismatches)
        by_id = [f for f in fixes if "id" in f]
        by_email = [f for f in fixes if "id" not in f]
        results = []
        if by_id:
            results += mkto.upsert_leads(by_id, lookup_field="id")
        if by_email:
            results += mkto.upsert_leads(by_email, lookup_field="email")
        fixed = sum(1 for r in results if r.ok)
    if not ctx.dry_run:
        db.watermarks.set_max(account, WATERMARK, ctx.now)
    kinds = Counter(m.kind.value for m in mismatches)
    return {
        "leads_compared": len(changed),
        "mismatches": dict(kinds),
        "examples": [_example(m) for m in mismatches[:50]],
        "fixed": fixed,
    }
