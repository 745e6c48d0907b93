"""Reconcile: compare Marketo leads with FreshBooks clients (names, e-mails, company links).

Small accounts read their clients' leads by e-mail (300 a call); above ``reconcile.bulk_threshold`` e-mails
the operator runs a bulk lead export of leads updated since the watermark and defers until it completes
(:class:`~airflow_provider_fbmkto.triggers.marketo.MarketoBulkExportTrigger`), then compares the file.
Only leads changed in Marketo since the last reconcile are compared (all of them the first time).
With ``fix_marketo`` FreshBooks' values are written back to the leads (FreshBooks is the truth).

Memory stays flat: an account of more than ``BUCKET_CLIENTS`` clients is compared in buckets. Clients and
leads are spilled to temporary files by a hash of their e-mail domain (of the whole e-mail for free-mail
domains), so an e-mail's clients and leads, and all the clients a company is named after, share a bucket;
each bucket is compared on its own, which gives the same mismatches as comparing everything at once.
"""

from __future__ import annotations

import heapq
import json
import math
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_fbmkto.state.mirror import FreshBooksMirror
from airflow_provider_fbmkto.sync.codec import from_json, to_json
from airflow_provider_fbmkto.sync.matching import email_domain, match_clients
from airflow_provider_fbmkto.sync.reconcile import LEAD_FIELDS, Mismatch, compare, corrections
from airflow_provider_fbmkto.sync.records import Client

if TYPE_CHECKING:
    from airflow_provider_fbmkto.hooks.marketo import MarketoHook
    from airflow_provider_fbmkto.pipeline.context import RunContext
    from airflow_provider_fbmkto.state.db import StateDB

WATERMARK = "marketo_reconciled_until"
#: Bulk exports filter on at most 31 days of ``updatedAt``.
MAX_EXPORT_SPAN = timedelta(days=31)
EXPORT_FIELDS = (*LEAD_FIELDS, "updatedAt")
#: Clients compared at once (larger accounts are compared in buckets, see the module notes).
BUCKET_CLIENTS = 5_000
EXAMPLES = 50


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
    mirror = FreshBooksMirror(db)
    if leads is None:
        emails = sorted({c.email.strip().lower() for c in mirror.clients(account) if c.email.strip()})
        leads = mkto.get_leads_by_email(emails, [*LEAD_FIELDS, "updatedAt"]) if emails else []
    buckets = max(1, math.ceil(mirror.count(account, "client") / BUCKET_CLIENTS))
    free_mail = frozenset(d.lower() for d in ctx.account.matching.free_mail)
    compared = 0
    kinds: Counter[str] = Counter()
    examples: list[Mismatch] = []
    fixes: list[dict[str, object]] = []
    for clients, bucket_leads in _buckets(mirror.clients(account), leads, buckets, free_mail):
        n, mismatches = _compare(clients, bucket_leads, since, ctx)
        compared += n
        kinds.update(m.kind.value for m in mismatches)
        examples = heapq.nsmallest(EXAMPLES, [*examples, *mismatches], key=_order)
        fixes += corrections(mismatches)
    fixed = 0
    if ctx.account.reconcile.fix_marketo and not ctx.dry_run:
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
    return {
        "leads_compared": compared,
        "mismatches": dict(kinds),
        "examples": [_example(m) for m in examples],
        "fixed": fixed,
    }


def _order(m: Mismatch) -> tuple[str, str, str, int]:
    return (m.email, m.kind.value, m.field or "", m.lead_id or 0)


def _compare(
    clients: list[Client], leads: Iterable[Mapping[str, Any]], since: datetime | None, ctx: RunContext
) -> tuple[int, list[Mismatch]]:
    """Compare ``clients`` with the ``leads`` changed since the watermark; ``(leads compared, mismatches)``."""
    wanted = {c.email.strip().lower() for c in clients if c.email.strip()}
    changed = [
        lead
        for lead in leads
        if str(lead.get("email", "")).lower() in wanted and (since is None or (_updated(lead) or ctx.now) >= since)
    ]
    matches = match_clients(clients, ctx.account.matching.rules, ctx.account.matching.free_mail)
    compared_emails = {str(lead.get("email", "")).lower() for lead in changed}
    scope = clients if since is None else [c for c in clients if c.email.strip().lower() in compared_emails]
    return len(changed), compare(scope, changed, companies=matches)


def _bucket_of(email: str, buckets: int, free_mail: frozenset[str]) -> int:
    domain = email_domain(email)
    basis = email.strip().lower() if domain is None or domain in free_mail else domain
    return zlib.crc32(basis.encode()) % buckets


def _buckets(
    clients: Iterable[Client], leads: Iterable[Mapping[str, Any]], buckets: int, free_mail: frozenset[str]
) -> Iterator[tuple[list[Client], Iterable[Mapping[str, Any]]]]:
    """``(clients, leads)`` of each bucket; one bucket (everything, in memory) for small accounts."""
    if buckets == 1:
        yield list(clients), leads
        return
    with tempfile.TemporaryDirectory(prefix="fbmkto-reconcile-") as tmp:
        folder = Path(tmp)
        with ExitStack() as stack:
            client_files = [stack.enter_context((folder / f"clients-{i}.jsonl").open("w")) for i in range(buckets)]
            for c in clients:
                client_files[_bucket_of(c.email, buckets, free_mail)].write(json.dumps(to_json(c)) + "\n")
        with ExitStack() as stack:
            lead_files = [stack.enter_context((folder / f"leads-{i}.jsonl").open("w")) for i in range(buckets)]
            for lead in leads:
                email = "" if lead.get("email") is None else str(lead.get("email"))
                lead_files[_bucket_of(email, buckets, free_mail)].write(json.dumps(dict(lead), default=str) + "\n")
        for i in range(buckets):
            with (folder / f"clients-{i}.jsonl").open() as lines:
                bucket = [from_json("client", json.loads(line)) for line in lines]
            yield [c for c in bucket if isinstance(c, Client)], _read_jsonl(folder / f"leads-{i}.jsonl")


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as lines:
        for line in lines:
            yield json.loads(line)
