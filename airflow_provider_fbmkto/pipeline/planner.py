"""Map: staged records → the FreshBooks mirror → planned Marketo writes → ledger rows.

What a run plans:

* **activities** of its window (Invoice Sent / Payment Received / Invoice Overdue), from the mirror, so a
  backfill of March finds March's payments whatever their ``updated`` time; plus Invoice Sent from pending
  ``invoice.sendByEmail`` webhook events (dated at the event; same key, so one activity per invoice);
* **companies and leads** of the clients it affects: clients whose records changed since the last pull,
  clients with an activity in the window, and -- first run or ``full_refresh`` -- every client. A company is
  always summarised over *all* its clients; leads and companies go to the ledger only when their payload
  hash changed, so a steady-state day sends only what changed;
* **list changes** mirroring each planned lead's payment status.

Summaries describe the billing facts as of the run (``ctx.now``), in the account's dominant currency
(the most common client currency): Marketo gets one number per field.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_fbmkto.pipeline.extract import EVENTS_FILE, FILES, PULLED_UNTIL
from airflow_provider_fbmkto.state.mirror import FreshBooksMirror
from airflow_provider_fbmkto.sync.activities import (
    invoice_sent_activities,
    overdue_activities,
    payment_activities,
    sent_event_activity,
)
from airflow_provider_fbmkto.sync.codec import Record, loads_line
from airflow_provider_fbmkto.sync.mapping import list_change, plan_companies, plan_leads
from airflow_provider_fbmkto.sync.matching import CompanyMatch, match_clients
from airflow_provider_fbmkto.sync.plan import MappingContext, PlannedActivity, Skipped
from airflow_provider_fbmkto.sync.records import Client, Invoice
from airflow_provider_fbmkto.sync.window import window_dates

if TYPE_CHECKING:
    from airflow_provider_fbmkto.pipeline.context import RunContext
    from airflow_provider_fbmkto.pipeline.extract import StagingDir
    from airflow_provider_fbmkto.state.db import StateDB

#: Clients whose invoices and payments are held in memory at once while planning companies and leads.
CLIENTS_PER_CHUNK = 2000
_DAY = timedelta(days=1)


def _staged(staging: StagingDir, kind: str) -> Iterator[Record]:
    path = staging / FILES[kind]
    if not path.exists():
        return
    with path.open("r") as lines:
        for line in lines:
            if line.strip():
                yield loads_line(line)


def _client_of(record: Record) -> int:
    if isinstance(record, Client):
        return record.id
    if isinstance(record, Invoice):
        return record.customerid
    return record.clientid


class _Tally:
    """Counts of what planning produced, for XCom and the report."""

    def __init__(self) -> None:
        self.planned: Counter[str] = Counter()
        self.ledger: Counter[str] = Counter()
        self.skipped: list[dict[str, str]] = []

    def add_skips(self, skips: Iterable[Skipped]) -> None:
        for s in skips:
            if len(self.skipped) < 200:
                self.skipped.append({"key": s.key, "reason": s.reason})
            self.planned["skipped"] += 1


def plan_run(db: StateDB, ctx: RunContext, staging: StagingDir, extracted: dict[str, Any]) -> dict[str, Any]:
    """Merge staged records into the mirror, plan the run's writes into the ledger; return counts."""
    account = ctx.name
    mirror = FreshBooksMirror(db)
    first_run = db.watermarks.get(account, PULLED_UNTIL) is None

    touched: set[int] = set()
    for kind in FILES:
        mirror.upsert(account, _tracking(_staged(staging, kind), touched))
    clients = list(mirror.clients(account))
    by_id = {c.id: c for c in clients}
    currency = _dominant(c.currency_code for c in clients if not c.is_deleted)
    mctx = MappingContext(account, extracted["fb_account_id"], ctx.account.tz, ctx.account.activity_types)
    tally = _Tally()

    activities = _window_activities(mirror, ctx, mctx, by_id, staging, tally)
    active_clients = {c.id for c in clients if c.email.strip().lower() in {a.lead_email for a in activities}}
    affected = set(by_id) if (first_run or ctx.full_refresh) else (touched | active_clients) & set(by_id)

    entries = [(a.key, "activity", a.payload(), a.payload_hash()) for a in activities]
    result = db.ledger.plan(account, ctx.run_id, entries)
    tally.ledger.update(result.as_dict())
    tally.planned["activity"] += len(activities)

    matches = match_clients(clients, ctx.account.matching.rules, ctx.account.matching.free_mail)
    for group in _groups(clients, affected, matches):
        ids = {c.id for c in group}
        invoices, payments = mirror.of_clients(account, ids)
        companies = plan_companies(group, invoices, payments, matches, as_of=ctx.now, ctx=mctx, currency=currency)
        chosen = [c for c in group if c.id in affected]
        leads = plan_leads(chosen, invoices, payments, matches, as_of=ctx.now, ctx=mctx, currency=currency)
        tally.add_skips(leads.skipped)
        changes = [ch for ch in (list_change(lead, ctx.account.segments, mctx) for lead in leads.items) if ch]
        rows: list[tuple[str, str, dict[str, Any], str]] = []
        rows += [(c.key, "company", c.record(), c.payload_hash()) for c in companies.items]
        rows += [(lead.key, "lead", lead.record(), lead.payload_hash()) for lead in leads.items]
        rows += [(ch.key, "list", ch.payload(), ch.payload_hash()) for ch in changes]
        tally.planned.update(company=len(companies.items), lead=len(leads.items), list=len(changes))
        tally.ledger.update(db.ledger.plan(account, ctx.run_id, rows).as_dict())

    if not ctx.dry_run:
        db.watermarks.set_max(account, PULLED_UNTIL, datetime.fromisoformat(extracted["pulled_until"]))
        if extracted.get("event_ids"):
            db.events.mark_consumed(extracted["event_ids"], ctx.run_id)
    return {
        "planned": dict(tally.planned),
        "ledger": dict(tally.ledger),
        "skipped": tally.skipped,
        "affected_clients": len(affected),
        "first_run": first_run,
    }


def _tracking(records: Iterator[Record], touched: set[int]) -> Iterator[Record]:
    for record in records:
        touched.add(_client_of(record))
        yield record


def _dominant(codes: Iterable[str]) -> str | None:
    counts = Counter(code for code in codes if code)
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0] if counts else None


def _groups(clients: list[Client], affected: set[int], matches: dict[int, CompanyMatch]) -> Iterator[list[Client]]:
    """Chunks of clients to plan together: every member of an affected company, and the affected clients.

    A company is never split across chunks (its summary needs all its clients); a lead's e-mail group
    neither (clients sharing an e-mail are one lead).
    """
    members: dict[str, list[Client]] = defaultdict(list)
    for c in clients:
        m = matches.get(c.id)
        members[m.key if m else f"email:{c.email.strip().lower() or c.id}"].append(c)
    wanted = [key for key, group in members.items() if any(c.id in affected for c in group)]
    chunk: list[Client] = []
    for key in sorted(wanted):
        chunk.extend(members[key])
        if len(chunk) >= CLIENTS_PER_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _window_activities(
    mirror: FreshBooksMirror,
    ctx: RunContext,
    mctx: MappingContext,
    by_id: dict[int, Client],
    staging: StagingDir,
    tally: _Tally,
) -> list[PlannedActivity]:
    account, window, tz = ctx.name, ctx.window, ctx.account.tz
    first, stop = window_dates(window, tz)
    items: list[PlannedActivity] = []

    sent = invoice_sent_activities(mirror.invoices_created(account, first, stop), by_id, window, mctx)
    payments = list(mirror.payments_dated(account, first, stop))
    paid_invoices, _ = mirror.of_clients(account, {p.clientid for p in payments})
    paid = payment_activities(payments, by_id, {i.id: i for i in paid_invoices}, window, mctx)
    # Overdue moment = start of the day after due_date: due dates one day before the window's dates.
    due = list(mirror.invoices_due(account, first - _DAY, stop))
    _, due_payments = mirror.of_clients(account, {i.customerid for i in due})
    overdue = overdue_activities(due, by_id, window, mctx, payments=due_payments)
    for plan in (sent, paid, overdue):
        items.extend(plan.items)
        tally.add_skips(plan.skipped)

    events = staging / EVENTS_FILE
    if events.exists():
        with events.open("r") as lines:
            for line in lines:
                if not line.strip():
                    continue
                event = json.loads(line)
                invoice = loads_line(event["invoice"])
                assert isinstance(invoice, Invoice)
                planned = sent_event_activity(invoice, datetime.fromisoformat(event["at"]), by_id, mctx)
                if isinstance(planned, Skipped):
                    tally.add_skips([planned])
                else:
                    items.append(planned)
    return items


__all__ = ["plan_run"]
