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

Memory stays flat whatever the account's size: activities are planned a batch of records at a time (with only
the clients and invoices that batch needs), and companies and leads a chunk of complete company / e-mail
groups at a time; across the account only a compact array of (group hash, client id) is held.
"""

from __future__ import annotations

import json
import zlib
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from itertools import islice
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_fbmkto.pipeline.extract import EVENTS_FILE, FILES, PULLED_UNTIL
from airflow_provider_fbmkto.state.mirror import FreshBooksMirror
from airflow_provider_fbmkto.sync.activities import (
    invoice_sent_activities,
    overdue_activities,
    payment_activities,
    sent_event_activity,
)
from airflow_provider_fbmkto.sync.codec import Record, loads_line
from airflow_provider_fbmkto.sync.health import invoice_is_live, invoice_unpaid_at
from airflow_provider_fbmkto.sync.mapping import list_change, plan_companies, plan_leads
from airflow_provider_fbmkto.sync.matching import match_client, match_clients
from airflow_provider_fbmkto.sync.plan import MappingContext, Plan, PlannedActivity, Skipped
from airflow_provider_fbmkto.sync.records import Client, Invoice
from airflow_provider_fbmkto.sync.window import window_dates

if TYPE_CHECKING:
    from airflow_provider_fbmkto.pipeline.context import RunContext
    from airflow_provider_fbmkto.pipeline.extract import StagingDir
    from airflow_provider_fbmkto.state.db import StateDB

#: Clients whose invoices and payments are held in memory at once while planning companies and leads.
CLIENTS_PER_CHUNK = 1000
#: Days of the window read by one query while planning activities.
DAYS_PER_CHUNK = 7
#: FreshBooks records whose activities are planned (and held in memory) at once.
RECORDS_PER_BATCH = 1000
T = TypeVar("T")
_DAY = timedelta(days=1)
#: Group hashes are 23 bits, so (hash, client id) packs into one signed 64-bit integer (ids < 2**40). Two
#: groups sharing a hash only land in the same chunk, which changes nothing but the chunk's size.
_HASH_BITS, _ID_BITS = 23, 40


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

    everyone = first_run or ctx.full_refresh
    touched: set[int] = set()
    for kind in FILES:
        staged = _staged(staging, kind)
        mirror.upsert(account, staged if everyone else _tracking(staged, touched))
    mctx = MappingContext(account, extracted["fb_account_id"], ctx.account.tz, ctx.account.activity_types)
    tally = _Tally()

    active_emails: set[str] = set()
    for activities in _window_activities(mirror, ctx, mctx, staging, tally):
        if not everyone:
            active_emails.update(a.lead_email for a in activities)
        entries = [(a.key, "activity", a.payload(), a.payload_hash()) for a in activities]
        tally.ledger.update(db.ledger.plan(account, ctx.run_id, entries).as_dict())
        tally.planned["activity"] += len(activities)

    groups = _Groups(ctx, everyone, touched, active_emails)
    packed, wanted, currency = groups.pack(mirror.clients(account))
    for ids in _chunks(packed, wanted):
        group = groups.whole_wanted(mirror.clients_by_ids(account, ids).values())
        if not group:
            continue
        matches = match_clients(group, ctx.account.matching.rules, ctx.account.matching.free_mail)
        invoices, payments = mirror.of_clients(account, [c.id for c in group])
        companies = plan_companies(group, invoices, payments, matches, as_of=ctx.now, ctx=mctx, currency=currency)
        chosen = [c for c in group if groups.affected(c)]
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
        "affected_clients": groups.affected_count,
        "first_run": first_run,
    }


def _tracking(records: Iterator[Record], touched: set[int]) -> Iterator[Record]:
    for record in records:
        touched.add(_client_of(record))
        yield record


class _Groups:
    """Which clients a run plans companies and leads for, and how they are chunked.

    A client's group is its company (the matched company key) or, unmatched, its e-mail: a company is never
    split across chunks (its summary needs all its clients), nor a lead's e-mail group. A group is planned
    when one of its clients is affected: every client on a first run or ``full_refresh``, else the clients
    whose records changed and those with an activity in the window.
    """

    def __init__(self, ctx: RunContext, everyone: bool, touched: set[int], active_emails: set[str]) -> None:
        self.rules = ctx.account.matching.rules
        self.free_mail = frozenset(d.lower() for d in ctx.account.matching.free_mail)
        self.everyone = everyone
        self.touched = touched
        self.active_emails = active_emails
        self.affected_count = 0

    def key(self, c: Client) -> str:
        match = None if c.is_deleted else match_client(c, self.rules, self.free_mail)
        return match.key if match else f"email:{c.email.strip().lower() or c.id}"

    def affected(self, c: Client) -> bool:
        return self.everyone or c.id in self.touched or c.email.strip().lower() in self.active_emails

    def pack(self, clients: Iterable[Client]) -> tuple[array[int], set[int] | None, str | None]:
        """One pass over the account's clients: ``(group hash << 40) | id`` of each, sorted; the hashes of the
        groups to plan (``None``: all); the dominant currency of the live clients."""
        packed: array[int] = array("q")
        wanted: set[int] | None = None if self.everyone else set()
        currencies: Counter[str] = Counter()
        for c in clients:
            if not c.is_deleted and c.currency_code:
                currencies[c.currency_code] += 1
            group = zlib.crc32(self.key(c).encode()) & ((1 << _HASH_BITS) - 1)
            packed.append(group << _ID_BITS | c.id)
            if self.affected(c):
                self.affected_count += 1
                if wanted is not None:
                    wanted.add(group)
        currency = min(currencies.items(), key=lambda kv: (-kv[1], kv[0]))[0] if currencies else None
        return array("q", sorted(packed)), wanted, currency

    def whole_wanted(self, clients: Iterable[Client]) -> list[Client]:
        """The clients of the wanted groups among ``clients`` (a chunk of whole groups), by id."""
        ordered = sorted(clients, key=lambda c: c.id)
        if self.everyone:
            return ordered
        keys = {c.id: self.key(c) for c in ordered}
        wanted = {keys[c.id] for c in ordered if self.affected(c)}
        return [c for c in ordered if keys[c.id] in wanted]


def _chunks(packed: array[int], wanted: set[int] | None) -> Iterator[list[int]]:
    """Client ids to plan together: whole wanted groups, about ``CLIENTS_PER_CHUNK`` clients a chunk."""
    chunk: list[int] = []
    previous = -1
    for value in packed:
        group, client_id = value >> _ID_BITS, value & ((1 << _ID_BITS) - 1)
        if group != previous and len(chunk) >= CLIENTS_PER_CHUNK:
            yield chunk
            chunk = []
        previous = group
        if wanted is None or group in wanted:
            chunk.append(client_id)
    if chunk:
        yield chunk


def _batches(records: Iterable[T]) -> Iterator[list[T]]:
    it = iter(records)
    while batch := list(islice(it, RECORDS_PER_BATCH)):
        yield batch


def _planned(plan: Plan[PlannedActivity], tally: _Tally) -> list[PlannedActivity]:
    tally.add_skips(plan.skipped)
    return list(plan.items)


def _spans(first: date, last: date) -> Iterator[tuple[date, date]]:
    """``[first, last]`` in inclusive spans of ``DAYS_PER_CHUNK`` days."""
    while first <= last:
        end = min(last, first + timedelta(days=DAYS_PER_CHUNK - 1))
        yield first, end
        first = end + _DAY


def _window_activities(
    mirror: FreshBooksMirror,
    ctx: RunContext,
    mctx: MappingContext,
    staging: StagingDir,
    tally: _Tally,
) -> Iterator[list[PlannedActivity]]:
    """The window's activities in batches of at most ``RECORDS_PER_BATCH`` records, each read with only the
    clients, invoices and payments it needs; queries cover ``DAYS_PER_CHUNK`` days at a time."""
    account, window, tz = ctx.name, ctx.window, ctx.account.tz
    first, stop = window_dates(window, tz)
    # Overdue moment = start of the day after due_date: due dates from one day before the window's first date.
    for low, high in _spans(first - _DAY, stop):
        if high >= first:
            for created in _batches(mirror.invoices_created(account, max(low, first), high)):
                by_id = mirror.clients_by_ids(account, {i.customerid for i in created})
                yield _planned(invoice_sent_activities(created, by_id, window, mctx), tally)
            for payments in _batches(mirror.payments_dated(account, max(low, first), high)):
                by_id = mirror.clients_by_ids(account, {p.clientid for p in payments})
                paid = mirror.invoices_by_ids(account, {p.invoiceid for p in payments})
                yield _planned(payment_activities(payments, by_id, paid, window, mctx), tally)
        # Only live invoices still unpaid at the window's end can go overdue in it (overdue_activities checks
        # again); the others need neither their client nor their payments.
        due_now = mirror.invoices_due(account, low, high)
        for due in _batches(i for i in due_now if invoice_is_live(i) and invoice_unpaid_at(i, window.end, tz)):
            by_id = mirror.clients_by_ids(account, {i.customerid for i in due})
            paid_back = mirror.payments_of_invoices(account, due)
            yield _planned(overdue_activities(due, by_id, window, mctx, payments=paid_back), tally)

    events = staging / EVENTS_FILE
    if events.exists():
        sent: list[tuple[Invoice, datetime]] = []
        with events.open("r") as lines:
            for line in lines:
                if line.strip():
                    event = json.loads(line)
                    invoice = loads_line(event["invoice"])
                    assert isinstance(invoice, Invoice)
                    sent.append((invoice, datetime.fromisoformat(event["at"])))
        by_id = mirror.clients_by_ids(account, {invoice.customerid for invoice, _ in sent})
        items = []
        for invoice, at in sent:
            planned = sent_event_activity(invoice, at, by_id, mctx)
            if isinstance(planned, Skipped):
                tally.add_skips([planned])
            else:
                items.append(planned)
        if items:
            yield items


__all__ = ["plan_run"]
