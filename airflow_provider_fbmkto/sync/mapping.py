"""FreshBooks records → planned Marketo writes (the public face of the ``map`` step).

Activities live in :mod:`~airflow_provider_fbmkto.sync.activities` and are re-exported here. This module
adds leads, companies and static-list membership:

* **Lead** (key ``lead:<acct>:<email>``): ``email``, ``firstName``, ``lastName``, ``externalCompanyId`` (when
  the client matched a company — that is what attaches the lead to the company), ``fbPaymentStatus``,
  ``fbOutstandingBalance``, ``fbLastPaymentDate``. Several clients with one e-mail make one lead: names and
  company come from the lowest client id, billing facts from all their invoices together.
* **Company** (key ``company:<acct>:<company key>``): ``externalCompanyId``, ``company``, ``website``
  (domain, when known), ``fbPaymentTerms``, ``fbOutstandingBalance``, ``fbInvoiceCount``,
  ``fbPaymentStatus``, ``fbLastPaymentDate``, ``fbAverageDaysToPay``, over all its clients' invoices.
* **Lists**: membership mirrors ``fbPaymentStatus`` — ``paid`` → paid list, ``overdue`` → overdue list, a lead
  is in at most one and leaves the other (:func:`list_membership`).

Clients without an e-mail get no lead (:class:`Skipped` ``"client has no e-mail"``). Deleted clients get no
lead write either, and their existing Marketo leads are **not deleted**: Marketo leads belong to marketing
(they may have history and other sources), so a deletion in FreshBooks is reported as a skip, never
propagated.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime

from airflow_provider_fbmkto.sync.activities import (
    invoice_sent_activities,
    lead_email_for,
    overdue_activities,
    payment_activities,
    sent_event_activity,
)
from airflow_provider_fbmkto.sync.health import CompanySummary, PaymentStatus, summarize
from airflow_provider_fbmkto.sync.keys import company_ledger_key, lead_key, list_key, payload_hash
from airflow_provider_fbmkto.sync.matching import CompanyMatch
from airflow_provider_fbmkto.sync.plan import (
    ActivityTypeIds,
    ActivityTypeNames,
    FieldValue,
    MappingContext,
    Plan,
    PlannedActivity,
    PlannedCompany,
    PlannedLead,
    PlannedListChange,
    Segments,
    Skipped,
)
from airflow_provider_fbmkto.sync.records import Client, Invoice, Payment

__all__ = [
    "SKIP_DELETED_CLIENT",
    "SKIP_NO_EMAIL",
    "ActivityTypeIds",
    "ActivityTypeNames",
    "MappingContext",
    "Plan",
    "PlannedActivity",
    "PlannedCompany",
    "PlannedLead",
    "PlannedListChange",
    "Segments",
    "Skipped",
    "company_payload",
    "invoice_sent_activities",
    "lead_email_for",
    "lead_payload",
    "list_change",
    "list_membership",
    "overdue_activities",
    "payload_hash",
    "payment_activities",
    "plan_companies",
    "plan_leads",
    "segment_of",
    "sent_event_activity",
]

SKIP_NO_EMAIL = "client has no e-mail"
SKIP_DELETED_CLIENT = "client is deleted in FreshBooks; its Marketo lead is left as it is"


def lead_payload(
    email: str, client: Client, summary: CompanySummary, company_match: CompanyMatch | None, ctx: MappingContext
) -> PlannedLead:
    """The lead write for ``email`` with ``client``'s names and ``summary``'s billing facts."""
    email = email.strip().lower()
    fields: list[tuple[str, FieldValue]] = [
        ("email", email),
        ("firstName", client.fname.strip()),
        ("lastName", client.lname.strip()),
    ]
    if company_match is not None:
        fields.append(("externalCompanyId", company_match.external_id))
    fields += [
        ("fbPaymentStatus", summary.status.value),
        ("fbOutstandingBalance", summary.outstanding),
        ("fbLastPaymentDate", summary.last_payment_date),
    ]
    return PlannedLead(lead_key(ctx.account, email), email, summary.status, tuple(fields))


def company_payload(match: CompanyMatch, summary: CompanySummary, ctx: MappingContext) -> PlannedCompany:
    """The company write for ``match`` with ``summary``'s billing facts (``website`` only when a domain is known)."""
    fields: list[tuple[str, FieldValue]] = [
        ("externalCompanyId", match.external_id),
        ("company", match.name),
    ]
    if match.domain is not None:
        fields.append(("website", match.domain))
    fields += [
        ("fbPaymentTerms", summary.payment_terms),
        ("fbOutstandingBalance", summary.outstanding),
        ("fbInvoiceCount", summary.invoice_count),
        ("fbPaymentStatus", summary.status.value),
        ("fbLastPaymentDate", summary.last_payment_date),
        ("fbAverageDaysToPay", summary.average_days_to_pay),
    ]
    return PlannedCompany(company_ledger_key(ctx.account, match.key), match.external_id, tuple(fields))


def _by_client(
    invoices: Iterable[Invoice], payments: Iterable[Payment]
) -> tuple[dict[int, list[Invoice]], dict[int, list[Payment]]]:
    inv_by: dict[int, list[Invoice]] = defaultdict(list)
    pay_by: dict[int, list[Payment]] = defaultdict(list)
    for inv in invoices:
        inv_by[inv.customerid].append(inv)
    for pay in payments:
        pay_by[pay.clientid].append(pay)
    return inv_by, pay_by


def plan_leads(
    clients: Iterable[Client],
    invoices: Iterable[Invoice],
    payments: Iterable[Payment],
    matches: Mapping[int, CompanyMatch],
    *,
    as_of: datetime,
    ctx: MappingContext,
    currency: str | None = None,
) -> Plan[PlannedLead]:
    """One lead per distinct e-mail among live clients, sorted by key.

    :param matches: client id → company (from :func:`~airflow_provider_fbmkto.sync.matching.match_clients`).
    :param as_of: the moment the billing facts describe.
    :param currency: the account's currency for ``fbOutstandingBalance`` (see
        :func:`~airflow_provider_fbmkto.sync.health.summarize`).
    """
    inv_by, pay_by = _by_client(invoices, payments)
    groups: dict[str, list[Client]] = defaultdict(list)
    skipped: list[Skipped] = []
    for client in sorted(clients, key=lambda c: c.id):
        email = client.email.strip().lower()
        if client.is_deleted:
            skipped.append(
                Skipped(lead_key(ctx.account, email) if email else _client_key(ctx, client), SKIP_DELETED_CLIENT)
            )
        elif not email:
            skipped.append(Skipped(_client_key(ctx, client), SKIP_NO_EMAIL))
        else:
            groups[email].append(client)
    leads = []
    for email, group in sorted(groups.items()):
        summary = summarize(
            [inv for c in group for inv in inv_by.get(c.id, [])],
            [pay for c in group for pay in pay_by.get(c.id, [])],
            as_of=as_of,
            tz=ctx.tz,
            currency=currency,
        )
        leads.append(lead_payload(email, group[0], summary, matches.get(group[0].id), ctx))
    return Plan(tuple(leads), tuple(skipped))


def _client_key(ctx: MappingContext, client: Client) -> str:
    return f"client:{ctx.account}:{client.id}"


def plan_companies(
    clients: Iterable[Client],
    invoices: Iterable[Invoice],
    payments: Iterable[Payment],
    matches: Mapping[int, CompanyMatch],
    *,
    as_of: datetime,
    ctx: MappingContext,
    currency: str | None = None,
) -> Plan[PlannedCompany]:
    """One company per matched company key, over all its (live, matched) clients' invoices; sorted by key.

    Pass *all* of a company's clients and invoices: ``fbInvoiceCount`` and the balance count what they get.
    When a key's clients carry different matches (e.g. several rules for one company), the one of the
    lowest client id names it and the first known domain is its website.
    """
    inv_by, pay_by = _by_client(invoices, payments)
    members: dict[str, list[tuple[Client, CompanyMatch]]] = defaultdict(list)
    for client in sorted(clients, key=lambda c: c.id):
        match = matches.get(client.id)
        if match is not None and not client.is_deleted:
            members[match.key].append((client, match))
    companies = []
    for key, group in sorted(members.items()):
        first = group[0][1]
        domain = next((m.domain for _, m in group if m.domain is not None), None)
        match = CompanyMatch(key, first.name, domain, first.rule_index)
        summary = summarize(
            [inv for c, _ in group for inv in inv_by.get(c.id, [])],
            [pay for c, _ in group for pay in pay_by.get(c.id, [])],
            as_of=as_of,
            tz=ctx.tz,
            currency=currency,
        )
        companies.append(company_payload(match, summary, ctx))
    return Plan(tuple(companies), ())


def list_membership(status: PaymentStatus, segments: Segments) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(add_to, remove_from)`` list ids for a lead with ``status`` (only configured lists appear).

    ``paid`` → in the paid list, out of the overdue list; ``overdue`` → the reverse; anything else → out of
    both.
    """
    target = {PaymentStatus.PAID: segments.paid_list_id, PaymentStatus.OVERDUE: segments.overdue_list_id}.get(status)
    configured = [i for i in (segments.paid_list_id, segments.overdue_list_id) if i is not None]
    add = (target,) if target is not None else ()
    return add, tuple(i for i in configured if i != target)


def segment_of(status: PaymentStatus) -> str | None:
    """The segment a status puts a lead in: ``"paid"``, ``"overdue"`` or ``None``."""
    return status.value if status in (PaymentStatus.PAID, PaymentStatus.OVERDUE) else None


def list_change(lead: PlannedLead, segments: Segments, ctx: MappingContext) -> PlannedListChange | None:
    """The segment write for ``lead`` (lists and campaigns); ``None`` when no list or campaign is configured.

    ``campaigns`` holds ``on_paid_campaign_id`` / ``on_overdue_campaign_id`` for a lead in the paid /
    overdue segment: request them when this change is actually written — its hash changes exactly when
    the lead's segment does, so a written change means the lead just entered the segment.
    """
    if all(
        v is None
        for v in (
            segments.paid_list_id,
            segments.overdue_list_id,
            segments.on_paid_campaign_id,
            segments.on_overdue_campaign_id,
        )
    ):
        return None
    add, remove = list_membership(lead.status, segments)
    campaign = {
        PaymentStatus.PAID: segments.on_paid_campaign_id,
        PaymentStatus.OVERDUE: segments.on_overdue_campaign_id,
    }.get(lead.status)
    return PlannedListChange(
        key=list_key(ctx.account, lead.email),
        email=lead.email,
        segment=segment_of(lead.status),
        add_to=add,
        remove_from=remove,
        campaigns=(campaign,) if campaign is not None else (),
    )
