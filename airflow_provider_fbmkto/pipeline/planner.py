"""Map: staged records → the FreshBooks mirror → planned Marketo writes → ledger rows.

What a run plans:

* **activities** (Invoice Sent / Payment Received / Invoice Overdue) by the account's scope rule
  (``sync/scope.py``): a fact dated inside the span the account's runs have covered is sent by the first run
  that sees it -- the run whose window holds its date, or else the first run that pulls its record after it
  appeared or changed -- dated at its own date, once (the ledger key); a fact dated after the frontier waits
  for its window. The scope is extended before planning; the by-date pass covers the window and what it
  added to the scope, the by-change pass the pulled records (:mod:`~.planner_facts`). Facts older than
  Marketo's activity retention are counted, not sent. Pending activities whose record was deleted (or went
  back to draft) are withdrawn;
* **companies and leads** of the clients it affects: clients whose records changed since the last pull,
  clients with an activity this run, and -- first run or ``full_refresh`` -- every client. A company is
  always summarised over *all* its clients; leads and companies go to the ledger only when their payload
  hash changed, so a steady-state day sends only what changed;
* **list changes** mirroring each planned lead's payment status; the e-mail a client moved away from (or a
  deleted client's e-mail), when no live client has it any more, leaves both lists -- reported.

A dry run does all of this against the ledger read-only (a preview per kind, with examples) and writes no
sync state: no ledger row, scope, watermark or consumed event. It does refresh the mirror, the local copy of
FreshBooks, which keeps an e-mail move until a real run has made it.

Summaries describe the billing facts as of the run (``ctx.now``), in the account's dominant currency
(the most common client currency): Marketo gets one number per field.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_fbmkto.pipeline.extract import FILES, PULLED_UNTIL
from airflow_provider_fbmkto.pipeline.planner_facts import FactPlanner, staged, staged_data
from airflow_provider_fbmkto.pipeline.planner_groups import Groups, chunks
from airflow_provider_fbmkto.pipeline.preflight import companies_refused
from airflow_provider_fbmkto.state.ledger import PLAN_ROWS_PER_TX
from airflow_provider_fbmkto.state.mirror import FreshBooksMirror
from airflow_provider_fbmkto.sync.keys import payload_hash
from airflow_provider_fbmkto.sync.mapping import company_payload, company_summaries, list_change, list_exit, plan_leads
from airflow_provider_fbmkto.sync.matching import match_clients
from airflow_provider_fbmkto.sync.plan import MappingContext, PlannedActivity, Skipped
from airflow_provider_fbmkto.sync.records import Client
from airflow_provider_fbmkto.sync.scope import Scope, changed_coverage, date_spans, retention_start, split_retained

if TYPE_CHECKING:
    from airflow_provider_fbmkto.pipeline.context import RunContext
    from airflow_provider_fbmkto.pipeline.extract import StagingDir
    from airflow_provider_fbmkto.state.db import StateDB

#: Entries of the report's lists (skips, moves, examples) kept at most.
LISTED = 200
EXAMPLES = 5
WITHDRAWN = "withdrawn before it was sent: its FreshBooks record was deleted (or the invoice is a draft again)"
Row = tuple[str, str, dict[str, Any], str]


def _example(kind: str, payload: dict[str, Any]) -> str:
    if kind == "activity":
        return (
            f"{payload['activityType']} {payload['primaryAttributeValue']} on {payload['activityDate'][:10]} "
            f"for {payload['leadEmail']}"
        )
    if kind == "lead":
        return f"{payload.get('email')}: fbPaymentStatus={payload.get('fbPaymentStatus')}"
    if kind == "list":
        return f"{payload['email']}: {payload['segment'] or 'in no segment list'}"
    return str(payload.get("externalCompanyId") or payload.get("company"))


class _Tally:
    """What planning produced, for XCom and the report; also where planned rows go (the ledger, or a preview)."""

    def __init__(self, db: StateDB, ctx: RunContext) -> None:
        self.db = db
        self.ctx = ctx
        self.planned: Counter[str] = Counter()
        self.ledger: Counter[str] = Counter()
        self.skipped: list[dict[str, str]] = []
        self.too_old: list[str] = []
        self.too_old_count = 0
        self.preview: dict[str, dict[str, Any]] = defaultdict(lambda: {"new": 0, "changed": 0, "examples": []})
        #: activity rows planned but not yet written: the passes' small batches go to the ledger a few thousand
        #: at a time (one transaction each); :meth:`flush` writes the rest
        self._activity_rows: list[Row] = []

    def add_skips(self, skips: Iterable[Skipped]) -> None:
        for s in skips:
            if len(self.skipped) < LISTED:
                self.skipped.append({"key": s.key, "reason": s.reason})
            self.planned["skipped"] += 1

    def activities(self, items: list[PlannedActivity], retained_from: datetime) -> list[PlannedActivity]:
        kept, old = split_retained(items, start=retained_from)
        self.too_old_count += len(old)
        self.too_old += [a.key for a in old[: max(0, 10 - len(self.too_old))]]
        payloads = [(a.key, a.payload()) for a in kept]  # each built once, for the row and for its hash
        self._activity_rows += [(key, "activity", payload, payload_hash(payload)) for key, payload in payloads]
        if len(self._activity_rows) >= PLAN_ROWS_PER_TX:  # about 0.5 kB a row
            self.flush()
        self.planned["activity"] += len(kept)
        return kept

    def flush(self) -> None:
        """Write the activity rows :meth:`activities` still holds."""
        rows, self._activity_rows = self._activity_rows, []
        self.plan(rows)

    def plan(self, rows: list[Row]) -> None:
        if not rows:
            return
        if not self.ctx.dry_run:
            self.ledger.update(self.db.ledger.plan(self.ctx.name, self.ctx.run_id, rows).as_dict())
            return
        payloads = {key: (kind, payload) for key, kind, payload, _ in rows}
        for key, kind, decision in self.db.ledger.preview(rows):
            self.ledger[decision] += 1
            if decision in ("new", "changed"):
                entry = self.preview[kind]
                entry[decision] += 1
                if len(entry["examples"]) < EXAMPLES:
                    entry["examples"].append(f"{decision}: {_example(kind, payloads[key][1])}")


def _scope(db: StateDB, ctx: RunContext) -> tuple[Scope | None, Scope]:
    """The scope before this run and with its window (extended in the state DB, except in a dry run)."""
    if ctx.dry_run:
        before = db.scopes.get(ctx.name)
        return before, before.extended(ctx.window) if before else Scope.of(ctx.window)
    return db.scopes.extend(ctx.name, ctx.run_id, ctx.window)


def plan_run(db: StateDB, ctx: RunContext, staging: StagingDir, extracted: dict[str, Any]) -> dict[str, Any]:
    """Merge staged records into the mirror, plan the run's writes into the ledger; return counts."""
    account = ctx.name
    mirror = FreshBooksMirror(db)
    first_run = db.watermarks.get(account, PULLED_UNTIL) is None
    everyone = first_run or ctx.full_refresh
    touched: set[int] = set()
    for kind in FILES:
        records = staged_data(staging, kind)
        mirror.upsert_data(account, records if everyone else _tracking(records, touched))
    before, after = _scope(db, ctx)  # after the mirror has this run's records (see state/scope.py)
    mctx = MappingContext(
        account,
        extracted["fb_account_id"],
        ctx.account.tz,
        ctx.account.activity_types,
        fit=ctx.account.marketo,
        companies_refused=companies_refused(db, account),
    )
    tally = _Tally(db, ctx)

    facts = FactPlanner(mirror, ctx, mctx, tally.add_skips)
    spans = date_spans(before, after, ctx.window)
    passes: list[Iterator[list[PlannedActivity]]] = [facts.by_date(spans), facts.from_events(staging)]
    if before is not None:
        dates = changed_coverage(after, spans, end=ctx.window.end, now=ctx.now)
        passes.append(facts.by_change(staging, dates, clients=not everyone))
    retained_from = retention_start(ctx.now, ctx.account.tz)
    active_emails: set[str] = set()
    for activities in (batch for p in passes for batch in p):
        kept = tally.activities(activities, retained_from)
        if not everyone:
            active_emails.update(a.lead_email for a in kept)
    tally.flush()
    withdrawn = 0
    if not first_run:  # a first run has no earlier ledger row to withdraw
        withdrawn = sum(
            db.ledger.withdraw(account, ctx.run_id, keys, prefixes, reason=WITHDRAWN, dry_run=ctx.dry_run)
            for keys, prefixes in facts.withdrawals(staging)
        )

    moves = mirror.moves(account)
    deleted = [c for c in staged(staging, "client") if isinstance(c, Client) and c.is_deleted and c.email.strip()]
    touched.update(c.id for c, _ in moves)
    vacated = {old for _, old in moves} | {c.email.strip().lower() for c in deleted}
    groups = Groups(ctx, everyone, touched, active_emails, vacated)
    planned_emails = _plan_groups(db, ctx, mirror, mctx, groups, tally)
    exited = _plan_exits(ctx, mctx, tally, vacated - groups.still_used - planned_emails)
    if everyone:  # a first run or full refresh pulls every deleted client: report those whose lead left a list
        deleted = [c for c in deleted if c.email.strip().lower() in exited]

    if not ctx.dry_run:
        db.watermarks.set_max(account, PULLED_UNTIL, datetime.fromisoformat(extracted["pulled_until"]))
        if extracted.get("event_ids"):
            db.events.mark_consumed(extracted["event_ids"], ctx.run_id)
        mirror.clear_moves(account, [c.id for c, _ in moves])
    result: dict[str, Any] = {
        "planned": dict(tally.planned),
        "ledger": dict(tally.ledger),
        "skipped": tally.skipped,
        "affected_clients": groups.affected_count,
        "first_run": first_run,
        "scope": {"horizon": after.horizon.isoformat(), "frontier": after.frontier.isoformat()},
        "withdrawn": withdrawn,
        "email_changes": [{"client": c.id, "from": old, "to": c.email.strip().lower()} for c, old in moves][:LISTED],
        "deleted_clients": [{"client": c.id, "email": c.email.strip().lower()} for c in deleted][:LISTED],
    }
    if tally.too_old_count:
        result["too_old"] = {
            "count": tally.too_old_count,
            "before": retained_from.date().isoformat(),
            "examples": tally.too_old,
        }
    if ctx.dry_run:
        result["preview"] = dict(tally.preview)
    return result


def _tracking(records: Iterator[tuple[str, dict[str, Any]]], touched: set[int]) -> Iterator[tuple[str, dict[str, Any]]]:
    for kind, data in records:
        touched.add(int(data["id"] if kind == "client" else data["customerid" if kind == "invoice" else "clientid"]))
        yield kind, data


def _plan_groups(
    db: StateDB, ctx: RunContext, mirror: FreshBooksMirror, mctx: MappingContext, groups: Groups, tally: _Tally
) -> set[str]:
    """Plan companies, leads and list changes of the affected groups; returns the lead e-mails planned."""
    account = ctx.name
    planned: set[str] = set()
    packed, wanted, currency = groups.pack(mirror.clients(account))
    for ids in chunks(packed, wanted):
        group = groups.whole_wanted(mirror.clients_by_ids(account, ids).values())
        if not group:
            continue
        matches = match_clients(group, ctx.account.matching.rules, ctx.account.matching.free_mail)
        invoices, payments = mirror.of_clients(account, [c.id for c in group])
        summaries = company_summaries(group, invoices, payments, matches, as_of=ctx.now, ctx=mctx, currency=currency)
        companies = [company_payload(m, s, mctx) for m, s in summaries.values()] if mctx.writes_companies else []
        chosen = [c for c in group if groups.affected(c)]
        on_leads = summaries if mctx.company_facts_on_leads else None
        leads = plan_leads(
            chosen, invoices, payments, matches, as_of=ctx.now, ctx=mctx, currency=currency, companies=on_leads
        )
        tally.add_skips(leads.skipped)
        changes = [ch for ch in (list_change(lead, ctx.account.segments, mctx) for lead in leads.items) if ch]
        rows: list[Row] = []
        rows += [(c.key, "company", c.record(), c.payload_hash()) for c in companies]
        rows += [(lead.key, "lead", lead.record(), lead.payload_hash()) for lead in leads.items]
        rows += [(ch.key, "list", ch.payload(), ch.payload_hash()) for ch in changes]
        tally.planned.update(company=len(companies), lead=len(leads.items), list=len(changes))
        tally.plan(rows)
        planned.update(lead.email for lead in leads.items)
    return planned


def _plan_exits(ctx: RunContext, mctx: MappingContext, tally: _Tally, emails: set[str]) -> set[str]:
    """Take e-mails no live client has any more out of both lists -- only those the sync ever put in a list row
    (a lead the sync never listed has nothing to leave); returns the e-mails whose segment this changes."""
    exits = {ch.key: ch for ch in (list_exit(e, ctx.account.segments, mctx) for e in sorted(emails)) if ch}
    rows = [(ch.key, "list", ch.payload(), ch.payload_hash()) for ch in exits.values()]
    decisions = {key: decision for key, _, decision in tally.db.ledger.preview(rows)}
    rows = [r for r in rows if decisions[r[0]] != "new"]
    tally.planned["list_exit"] += len(rows)
    tally.plan(rows)
    return {exits[key].email for key, decision in decisions.items() if decision == "changed"}


__all__ = ["plan_run"]
