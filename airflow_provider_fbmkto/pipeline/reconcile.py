"""Reconcile: compare Marketo leads with FreshBooks clients (names, e-mails, company links), and companies' names.

Which leads are compared, and how they are read:

* **the change feed** (every reconcile after the first, while the last one is at most :data:`FEED_RETENTION`
  old): Marketo's Lead Changes feed (``activities/leadchanges.json``) from where the last reconcile stopped
  (the feed position, kept per account in the state DB; a date-based paging token from the last reconcile's
  time when there is none) lists the leads created or whose e-mail, names or company changed; only those are
  read (by id, 300 a call, and by the e-mails they left) and compared. Nothing changed in Marketo: one call;
* **a full comparison** (the first reconcile, or the last one is older than the feed keeps): above
  ``reconcile.bulk_threshold`` clients the operator runs a bulk lead export of leads updated since the
  watermark (at most 31 days) and defers until it completes
  (:class:`~airflow_provider_fbmkto.triggers.marketo.MarketoBulkExportTrigger`), then compares the file; smaller
  accounts read their clients' leads by e-mail (300 a call).

With ``fix_marketo`` FreshBooks' values are written back to the leads (FreshBooks is the truth).

Companies (:func:`reconcile_companies`): the companies this account has written (its ledger's company rows)
are read back by ``externalCompanyId`` and their names compared, :data:`COMPANY_KEYS_PER_RUN` a run (one
call) in turn, so every company is checked every ``ceil(companies / 300)`` runs at a fixed cost.

Memory stays flat: an account of more than ``BUCKET_CLIENTS`` clients is compared in buckets. Clients and
leads are spilled to temporary files by a hash of their e-mail domain (of the whole e-mail for free-mail
domains), so an e-mail's clients and leads, and all the clients a company is named after, share a bucket;
each bucket is compared on its own, which gives the same mismatches as comparing everything at once.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_fbmkto.exceptions import ApiError
from airflow_provider_fbmkto.hooks.marketo_types import MAX_EXPORT_DAYS
from airflow_provider_fbmkto.pipeline.preflight import companies_refused
from airflow_provider_fbmkto.state.ledger_types import LedgerStatus
from airflow_provider_fbmkto.state.mirror import FreshBooksMirror
from airflow_provider_fbmkto.sync.codec import from_json, to_json
from airflow_provider_fbmkto.sync.keys import company_ledger_key
from airflow_provider_fbmkto.sync.marketo_fit import CompaniesMode
from airflow_provider_fbmkto.sync.matching import email_domain, match_clients
from airflow_provider_fbmkto.sync.reconcile import (
    LEAD_FIELDS,
    Mismatch,
    company_corrections,
    compare,
    compare_company_names,
    corrections,
)
from airflow_provider_fbmkto.sync.records import Client

if TYPE_CHECKING:
    from airflow_provider_fbmkto.hooks.marketo import MarketoHook
    from airflow_provider_fbmkto.pipeline.context import RunContext
    from airflow_provider_fbmkto.state.db import StateDB

log = logging.getLogger(__name__)

WATERMARK = "marketo_reconciled_until"
#: The feed position (the Lead Changes feed's last ``nextPageToken``) in the state DB's feed positions.
FEED_POSITION = "marketo_lead_changes"
#: How long Marketo's Lead Changes feed keeps activities (about 90 days): a last reconcile older than this
#: cannot be caught up from the feed, so the account is compared in full again.
FEED_RETENTION = timedelta(days=90)
#: The lead fields whose changes the feed is asked for (what :func:`~..sync.reconcile.compare` compares).
FEED_FIELDS = tuple(f for f in LEAD_FIELDS if f != "id")
#: Marketo's answer to a paging token it does not accept (the feed is then read from a date instead).
INVALID_TOKEN_CODE = "1003"
#: The company names read back a run (one ``companies.json`` call), in turn over the account's companies.
COMPANY_KEYS_PER_RUN = 300
COMPANY_CURSOR = "marketo_company_names"
#: The end of the last bulk export's ``updatedAt`` window (the change feed starts there after it).
EXPORT_END = "marketo_export_until"
#: Bulk exports filter on at most ``MAX_EXPORT_DAYS`` (31) days of ``updatedAt``.
MAX_EXPORT_SPAN = timedelta(days=MAX_EXPORT_DAYS)
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


def from_feed(db: StateDB, ctx: RunContext) -> bool:
    """Whether this reconcile reads the change feed: a last reconcile exists and the feed still covers it."""
    last = db.watermarks.get(ctx.name, WATERMARK)
    return last is not None and ctx.now - last <= FEED_RETENTION


def needs_export(db: StateDB, ctx: RunContext) -> bool:
    """Whether this reconcile is a bulk export: a full comparison of a large account."""
    return not from_feed(db, ctx) and needs_bulk(db, ctx)


def export_window(db: StateDB, ctx: RunContext) -> tuple[datetime, datetime]:
    """``[since, until)`` of ``updatedAt`` for a bulk export (clamped to Marketo's 31-day limit).

    ``until`` is now (after this run's load), remembered as where the change feed starts after the export.
    """
    # The next whole second: Marketo's filter has seconds, so the export and the feed after it leave no gap.
    until = (max(ctx.now, datetime.now(timezone.utc)) + timedelta(seconds=1)).replace(microsecond=0)
    since = db.watermarks.get(ctx.name, WATERMARK) or (until - MAX_EXPORT_SPAN)
    if not ctx.dry_run:
        db.watermarks.set_position(ctx.name, EXPORT_END, until.isoformat())
    return max(since, until - MAX_EXPORT_SPAN), until


def reconcile(
    mkto: MarketoHook, db: StateDB, ctx: RunContext, leads: Iterable[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """Compare (and optionally fix); ``leads`` are given after a bulk export, else read from the change feed
    (:func:`from_feed`) or, for a full comparison of a small account, by e-mail."""
    account = ctx.name
    since = db.watermarks.get(account, WATERMARK)
    mirror = FreshBooksMirror(db)
    scope: set[str] | None = None
    position: str | None = None
    source = "export"
    remembered = db.watermarks.position(account, EXPORT_END)
    compared_until = datetime.fromisoformat(remembered[0]) if remembered else ctx.now  # where the feed goes on
    if leads is None and from_feed(db, ctx):
        assert since is not None
        source = "feed"
        leads, scope, position = _feed_leads(mkto, db, ctx, since)
    elif leads is None:
        source = "email"
        compared_until = datetime.now(timezone.utc)  # the leads are read from now on
        emails = sorted({c.email.strip().lower() for c in mirror.clients(account) if c.email.strip()})
        leads = mkto.get_leads_by_email(emails, [*LEAD_FIELDS, "updatedAt"]) if emails else []
    buckets = max(1, math.ceil(mirror.count(account, "client") / BUCKET_CLIENTS))
    free_mail = frozenset(d.lower() for d in ctx.account.matching.free_mail)
    compared = 0
    kinds: Counter[str] = Counter()
    examples: list[Mismatch] = []
    fixes: list[dict[str, object]] = []
    for clients, bucket_leads in _buckets(mirror.clients(account), leads, buckets, free_mail):
        n, mismatches = _compare(clients, bucket_leads, None if scope is not None else since, ctx, scope)
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
        # After a full comparison up to now, the feed is read next time from now (one call here, none then).
        db.watermarks.set_position(account, FEED_POSITION, position or mkto.paging_token(compared_until))
    return {
        "source": source,
        "leads_compared": compared,
        "mismatches": dict(kinds),
        "examples": [_example(m) for m in examples],
        "fixed": fixed,
    }


def _feed_leads(
    mkto: MarketoHook, db: StateDB, ctx: RunContext, since: datetime
) -> tuple[list[dict[str, Any]], set[str], str]:
    """The leads the change feed names since the last reconcile, read now; ``(leads, e-mails in scope, position)``.

    The scope is the leads' e-mails and the e-mails leads changed away from (a client whose lead's e-mail
    changed in Marketo has no lead now, unless another lead has that e-mail: those are read by e-mail).
    """
    stored = db.watermarks.position(ctx.name, FEED_POSITION)
    token = stored[0] if stored is not None else mkto.paging_token(since)
    try:
        changes, left, token = _read_feed(mkto, token)
    except ApiError as err:
        if stored is None or err.code != INVALID_TOKEN_CODE:
            raise
        log.warning("Marketo refused the stored feed position of %s (%s); reading from %s", ctx.name, err, since)
        changes, left, token = _read_feed(mkto, mkto.paging_token(since))
    lead_ids = _unexplained(db, ctx.name, changes)
    fields = [*LEAD_FIELDS, "updatedAt"]
    leads = {int(lead["id"]): dict(lead) for lead in mkto.get_leads_by_id(sorted(lead_ids), fields)} if lead_ids else {}
    gone = left - {str(lead.get("email", "")).strip().lower() for lead in leads.values()}
    if gone:
        leads.update({int(lead["id"]): dict(lead) for lead in mkto.get_leads_by_email(sorted(gone), fields)})
    scope = {str(lead.get("email", "")).strip().lower() for lead in leads.values()} | left
    return list(leads.values()), scope - {""}, token


def _read_feed(mkto: MarketoHook, token: str) -> tuple[dict[int, list[dict[str, Any]]], set[str], str]:
    """``(lead id -> its field changes, e-mails changed away from, the feed's new position)``.

    A "New Lead" adds the lead with no change; each "Change Data Value" adds its ``fields[]`` entries.
    """
    changes: dict[int, list[dict[str, Any]]] = {}
    left: set[str] = set()
    position = token
    for activities, position in mkto.lead_changes(token, FEED_FIELDS):  # noqa: B007 (the last page's token)
        for activity in activities:
            mine = changes.setdefault(int(activity["leadId"]), [])
            for change in activity.get("fields") or []:
                mine.append(dict(change))
                if change.get("name") == "email" and change.get("oldValue"):
                    left.add(str(change["oldValue"]).strip().lower())
    return changes, left, position


def _unexplained(db: StateDB, account: str, changes: Mapping[int, list[dict[str, Any]]]) -> set[int]:
    """The changed leads to read: all but this account's own leads whose every change set the value this
    account last wrote (its own creates and updates, as the ledger has them: nothing to compare)."""
    if not changes:
        return set()
    written: dict[int, Mapping[str, Any]] = {}
    for row in db.ledger.iter_rows(account, "lead", LedgerStatus.WRITTEN):
        if row.marketo_id and row.marketo_id.isdigit() and int(row.marketo_id) in changes:
            written[int(row.marketo_id)] = row.payload
    return {lead_id for lead_id, fields in changes.items() if not _agrees(fields, written.get(lead_id))}


def _agrees(changes: list[dict[str, Any]], sent: Mapping[str, Any] | None) -> bool:
    if sent is None:
        return False
    for change in changes:
        name, new = str(change.get("name")), "" if change.get("newValue") is None else str(change["newValue"])
        if name not in sent:
            return False
        mine = "" if sent[name] is None else str(sent[name])
        if name == "email":
            new, mine = new.strip().lower(), mine.strip().lower()
        if new != mine:
            return False
    return True


def reconcile_companies(mkto: MarketoHook, db: StateDB, ctx: RunContext) -> dict[str, Any]:
    """Compare the names of up to :data:`COMPANY_KEYS_PER_RUN` of the companies this account wrote (next in
    turn) with Marketo's (one ``companies.json`` call); with ``fix_marketo`` write FreshBooks' names back."""
    mode = ctx.account.marketo.companies
    if mode in (CompaniesMode.OFF, CompaniesMode.LEAD_FIELDS) or companies_refused(db, ctx.name):
        return {"compared": 0, "mismatches": {}, "examples": [], "fixed": 0}
    cursor = db.watermarks.position(ctx.name, COMPANY_CURSOR)
    after = cursor[0] if cursor is not None else ""
    rows = [r for r in _written_companies(db, ctx.name) if r[0] > after][:COMPANY_KEYS_PER_RUN]
    if len(rows) < COMPANY_KEYS_PER_RUN:  # wrap around to the first companies
        taken = {key for key, _, _ in rows}
        rows += [r for r in _written_companies(db, ctx.name) if r[0] not in taken][: COMPANY_KEYS_PER_RUN - len(rows)]
    expected = {ext: name for _, ext, name in rows}
    found = mkto.get_companies("externalCompanyId", sorted(expected), ["externalCompanyId", "company"]) if rows else []
    mismatches = compare_company_names(expected, found)
    fixed = 0
    fixes = company_corrections(mismatches)
    if fixes and ctx.account.reconcile.fix_marketo and not ctx.dry_run:
        fixed = sum(1 for r in mkto.upsert_companies(fixes) if r.ok)
    if rows and not ctx.dry_run:  # the next run goes on after the last company read (wrapped ones included)
        db.watermarks.set_position(ctx.name, COMPANY_CURSOR, rows[-1][0])
    return {
        "compared": len(expected),
        "mismatches": dict(Counter(m.kind.value for m in mismatches)),
        "examples": [
            {"kind": m.kind.value, "externalCompanyId": m.external_id, "freshbooks": m.freshbooks_value,
             "marketo": m.marketo_value}
            for m in mismatches[:EXAMPLES]
        ],
        "fixed": fixed,
    }  # fmt: skip


def _written_companies(db: StateDB, account: str) -> Iterator[tuple[str, str, str]]:
    """``(ledger key, externalCompanyId, name)`` of the account's written companies, by key."""
    prefix = company_ledger_key(account, "")
    for row in db.ledger.iter_rows(account, "company", LedgerStatus.WRITTEN):
        ext, name = row.payload.get("externalCompanyId"), row.payload.get("company")
        if row.key.startswith(prefix) and isinstance(ext, str) and isinstance(name, str) and name.strip():
            yield row.key, ext, name


def _order(m: Mismatch) -> tuple[str, str, str, int]:
    return (m.email, m.kind.value, m.field or "", m.lead_id or 0)


def _compare(
    clients: list[Client],
    leads: Iterable[Mapping[str, Any]],
    since: datetime | None,
    ctx: RunContext,
    scope_emails: set[str] | None = None,
) -> tuple[int, list[Mismatch]]:
    """Compare ``clients`` with the ``leads`` changed since the watermark; ``(leads compared, mismatches)``.

    With ``scope_emails`` (the change feed's), only the clients of those e-mails are compared.
    """
    wanted = {c.email.strip().lower() for c in clients if c.email.strip()}
    if scope_emails is not None:
        wanted &= scope_emails
    changed = [
        lead
        for lead in leads
        if str(lead.get("email", "")).lower() in wanted and (since is None or (_updated(lead) or ctx.now) >= since)
    ]
    matches = match_clients(clients, ctx.account.matching.rules, ctx.account.matching.free_mail)
    compared_emails = {str(lead.get("email", "")).lower() for lead in changed}
    if scope_emails is not None:
        scope = [c for c in clients if c.email.strip().lower() in wanted]
    else:
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
