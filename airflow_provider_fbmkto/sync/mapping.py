"""FreshBooks records → planned Marketo writes (the public face of the ``map`` step).

Activities live in :mod:`~airflow_provider_fbmkto.sync.activities` and the planned values in
:mod:`~airflow_provider_fbmkto.sync.plan`. This module plans leads, companies and static-list membership:

* **Lead** (key ``lead:<acct>:<email>``): ``email``, ``firstName``, ``lastName``, ``externalCompanyId`` (when
  the client matched a company — that is what attaches the lead to the company), ``fbPaymentStatus``,
  ``fbOutstandingBalance``, ``fbLastPaymentDate``. Several clients with one e-mail make one lead: names and
  company come from the lowest client id, billing facts from all their invoices together.
* **Company** (key ``company:<acct>:<company key>``): ``externalCompanyId``, ``company``, ``website``
  (domain, when known), ``fbPaymentTerms``, ``fbOutstandingBalance``, ``fbInvoiceCount``,
  ``fbPaymentStatus``, ``fbLastPaymentDate``, ``fbAverageDaysToPay``, over all its clients' invoices.
* The names above are the defaults: the account's ``marketo.lead_fields`` / ``company_fields`` rename a fact
  or switch it off, and a blank FreshBooks text (a missing first name) is left out, never sent over Marketo's
  value. Where the account's companies are not written (``marketo.companies``, or a CRM-synced instance in
  ``auto``), leads carry no ``externalCompanyId`` and, as configured, the company's facts on lead fields.
* **Lists**: membership mirrors ``fbPaymentStatus`` — ``paid`` → paid list, ``overdue`` → overdue list, a lead
  is in at most one and leaves the other (:func:`list_membership`).

Clients without an e-mail get no lead (:class:`Skipped` ``"client has no e-mail"``). Deleted clients get no
lead write either, and their existing Marketo leads are **not deleted**: Marketo leads belong to marketing
(they may have history and other sources), so a deletion in FreshBooks is reported as a skip, never
propagated.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from airflow_provider_fbmkto.sync.health import CompanySummary, PaymentStatus, summarize
from airflow_provider_fbmkto.sync.keys import company_ledger_key, lead_key, list_key
from airflow_provider_fbmkto.sync.marketo_fit import COMPANY_FACTS_ON_LEADS
from airflow_provider_fbmkto.sync.matching import CompanyMatch
from airflow_provider_fbmkto.sync.plan import (
    FieldValue,
    MappingContext,
    Plan,
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
    "company_payload",
    "company_summaries",
    "lead_payload",
    "list_change",
    "list_exit",
    "list_membership",
    "plan_companies",
    "plan_leads",
    "segment_of",
]

SKIP_NO_EMAIL = "client has no e-mail"
SKIP_DELETED_CLIENT = "client is deleted in FreshBooks; its Marketo lead is left as it is"


def _named(
    facts: Iterable[tuple[str, FieldValue]], field_of: Callable[[str], str | None]
) -> list[tuple[str, FieldValue]]:
    """Facts under the account's field names: unmapped facts left out, and so are blank texts, so an empty
    FreshBooks value never overwrites what Marketo has (a fact with no value, e.g. no payment yet, is kept)."""
    out: list[tuple[str, FieldValue]] = []
    for fact, value in facts:
        name = field_of(fact)
        if name is None or (isinstance(value, str) and not value.strip()):
            continue
        out.append((name, value.strip() if isinstance(value, str) else value))
    return out


def _company_facts(summary: CompanySummary) -> list[tuple[str, FieldValue]]:
    return [
        ("payment_terms", summary.payment_terms),
        ("outstanding_balance", summary.outstanding),
        ("invoice_count", summary.invoice_count),
        ("payment_status", summary.status.value),
        ("last_payment_date", summary.last_payment_date),
        ("average_days_to_pay", summary.average_days_to_pay),
    ]


def lead_payload(
    email: str,
    client: Client,
    summary: CompanySummary,
    company_match: CompanyMatch | None,
    ctx: MappingContext,
    company_summary: CompanySummary | None = None,
) -> PlannedLead:
    """The lead write for ``email`` with ``client``'s names and ``summary``'s billing facts.

    :param company_summary: the company's facts, written on the lead too when ``ctx`` puts them there.
    """
    email = email.strip().lower()
    fields: list[tuple[str, FieldValue]] = [("email", email)]
    if company_match is not None and ctx.links_leads_to_companies:
        fields.append(("externalCompanyId", company_match.external_id))
    facts: list[tuple[str, FieldValue]] = [
        ("first_name", client.fname),
        ("last_name", client.lname),
        ("payment_status", summary.status.value),
        ("outstanding_balance", summary.outstanding),
        ("last_payment_date", summary.last_payment_date),
    ]
    if company_summary is not None and ctx.company_facts_on_leads:
        facts += [(f"company_{fact}", value) for fact, value in _company_facts(company_summary) if fact in _ON_LEADS]
    fields += _named(facts, ctx.fit.lead_field)
    return PlannedLead(lead_key(ctx.account, email), email, summary.status, tuple(fields))


#: Company facts that also exist as lead facts (``company_<fact>`` in ``marketo.lead_fields``).
_ON_LEADS = frozenset(f.removeprefix("company_") for f in COMPANY_FACTS_ON_LEADS)


def company_payload(match: CompanyMatch, summary: CompanySummary, ctx: MappingContext) -> PlannedCompany:
    """The company write for ``match`` with ``summary``'s billing facts (``website`` only when a domain is known)."""
    facts: list[tuple[str, FieldValue]] = [("company_name", match.name)]
    if match.domain is not None:
        facts.append(("website", match.domain))
    facts += _company_facts(summary)
    fields = [("externalCompanyId", match.external_id), *_named(facts, ctx.fit.company_field)]
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
    companies: Mapping[str, tuple[CompanyMatch, CompanySummary]] | None = None,
) -> Plan[PlannedLead]:
    """One lead per distinct e-mail among live clients, sorted by key.

    :param matches: client id → company (from :func:`~airflow_provider_fbmkto.sync.matching.match_clients`).
    :param as_of: the moment the billing facts describe.
    :param currency: the account's currency for ``fbOutstandingBalance`` (see
        :func:`~airflow_provider_fbmkto.sync.health.summarize`).
    :param companies: :func:`company_summaries` of these clients' companies, for leads that carry the company
        facts (``ctx.company_facts_on_leads``).
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
        match = matches.get(group[0].id)
        company = companies.get(match.key) if companies is not None and match is not None else None
        leads.append(lead_payload(email, group[0], summary, match, ctx, company[1] if company else None))
    return Plan(tuple(leads), tuple(skipped))


def _client_key(ctx: MappingContext, client: Client) -> str:
    return f"client:{ctx.account}:{client.id}"


def company_summaries(
    clients: Iterable[Client],
    invoices: Iterable[Invoice],
    payments: Iterable[Payment],
    matches: Mapping[int, CompanyMatch],
    *,
    as_of: datetime,
    ctx: MappingContext,
    currency: str | None = None,
) -> dict[str, tuple[CompanyMatch, CompanySummary]]:
    """Company key → (its match, its facts) over all its (live, matched) clients' invoices.

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
    out: dict[str, tuple[CompanyMatch, CompanySummary]] = {}
    for key, group in sorted(members.items()):
        first = group[0][1]
        domain = next((m.domain for _, m in group if m.domain is not None), None)
        summary = summarize(
            [inv for c, _ in group for inv in inv_by.get(c.id, [])],
            [pay for c, _ in group for pay in pay_by.get(c.id, [])],
            as_of=as_of,
            tz=ctx.tz,
            currency=currency,
        )
        out[key] = (CompanyMatch(key, first.name, domain, first.rule_index), summary)
    return out


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
    """One company per matched company key (see :func:`company_summaries`), sorted by key."""
    summaries = company_summaries(clients, invoices, payments, matches, as_of=as_of, ctx=ctx, currency=currency)
    return Plan(tuple(company_payload(match, summary, ctx) for match, summary in summaries.values()), ())


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


def list_exit(email: str, segments: Segments, ctx: MappingContext) -> PlannedListChange | None:
    """The segment write for an e-mail no live client has any more (its client moved to another e-mail, or was
    deleted): out of both lists, no campaign. ``None`` when no list is configured.

    It is the same state as a lead in neither segment, so a lead that was in no list gets no call.
    """
    removal = tuple(i for i in (segments.paid_list_id, segments.overdue_list_id) if i is not None)
    if not removal:
        return None
    email = email.strip().lower()
    return PlannedListChange(list_key(ctx.account, email), email, None, (), removal, ())
