"""Custom activities planned from FreshBooks records (pinned semantics, see docs/architecture.md).

* **Invoice Sent** — live (non-draft, non-deleted) invoices whose ``create_date`` belongs to the window,
  dated at the start of that date in the account zone; and ``invoice.sendByEmail`` webhook events, dated at
  the event (:func:`sent_event_activity`). Both share the key ``invoice_sent:<acct>:<invoice id>``, so an
  invoice yields one Invoice Sent activity, whichever path sees it first.
* **Payment Received** — non-deleted payments whose ``date`` belongs to the window, dated at that date.
* **Invoice Overdue** — live invoices whose overdue moment (start of the day after ``due_date``) lies in the
  window and which are still unpaid at the window's end (or at the end of the overdue day, when that is
  later: a short window still judges the whole day); dated at the overdue moment; once per (invoice, due date).

``window`` is any :class:`FactDates`: a run's :class:`~airflow_provider_fbmkto.sync.window.Window`, or a
:class:`~airflow_provider_fbmkto.sync.scope.Coverage` (the parts of the account's scope one planning pass takes).

Activities go on the lead of the invoice's (payment's) client. A client that is missing from
``clients_by_id``, deleted, or has no e-mail gives a :class:`Skipped` with the reason instead. Of a client
only its e-mail and deletion count (:class:`LeadClient`: a whole ``Client`` or a ``ClientContact``), of a paid
invoice only its number.

Activity payloads depend on the records only, never on the window or the run, so re-planning the same
record yields the same payload. ``daysOverdue`` is therefore the days from the due date to the activity
date (1 under the pinned overdue moment), not an age at run time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Protocol
from zoneinfo import ZoneInfo

from airflow_provider_fbmkto.sync.health import invoice_is_live, invoice_unpaid_at, outstanding_at, overdue_moment
from airflow_provider_fbmkto.sync.keys import invoice_overdue_key, invoice_sent_key, payment_received_key
from airflow_provider_fbmkto.sync.plan import MappingContext, Plan, PlannedActivity, Skipped
from airflow_provider_fbmkto.sync.records import Invoice, Payment
from airflow_provider_fbmkto.sync.window import start_of_day, to_utc

__all__ = [
    "FactDates",
    "LeadClient",
    "NumberedInvoice",
    "invoice_sent_activities",
    "lead_email_for",
    "overdue_activities",
    "payment_activities",
    "sent_event_activity",
]


class FactDates(Protocol):
    """Which fact moments a planning pass takes (a ``Window`` or a ``Coverage``)."""

    @property
    def end(self) -> datetime:
        """When "still unpaid" is judged (Invoice Overdue)."""
        ...

    def contains(self, moment: datetime) -> bool: ...

    def contains_date(self, day: date, tz: ZoneInfo) -> bool: ...


class LeadClient(Protocol):
    """What an activity needs of its client (``Client`` and ``ClientContact`` both are one)."""

    @property
    def email(self) -> str: ...

    @property
    def is_deleted(self) -> bool: ...


class NumberedInvoice(Protocol):
    """What a Payment Received activity needs of the paid invoice (``Invoice`` or ``InvoiceNumber``)."""

    @property
    def invoice_number(self) -> str: ...


def lead_email_for(client_id: int, clients_by_id: Mapping[int, LeadClient]) -> str | Skipped:
    """The lead e-mail (lower-cased) of a client, or the reason there is none (key left empty)."""
    client = clients_by_id.get(client_id)
    if client is None:
        return Skipped("", f"client {client_id} is not among the records of this run")
    if client.is_deleted:
        return Skipped("", f"client {client_id} is deleted in FreshBooks")
    email = client.email.strip().lower()
    if not email:
        return Skipped("", f"client {client_id} has no e-mail")
    return email


def _amount(value: Decimal) -> str:
    return format(value, "f")


def _local(moment: datetime, ctx: MappingContext) -> datetime:
    return to_utc(moment).astimezone(ctx.tz)


def _sent(invoice: Invoice, email: str, when: datetime, ctx: MappingContext) -> PlannedActivity:
    attrs = {
        "fbAccountId": ctx.fb_account_id,
        "amount": _amount(invoice.amount.amount),
        "currency": invoice.amount.currency,
        "dueDate": invoice.due_date.isoformat(),
    }
    return PlannedActivity(
        key=invoice_sent_key(ctx.account, invoice.id),
        lead_email=email,
        activity_type=ctx.activity_types.invoice_sent,
        activity_date=when,
        primary_attribute_value=invoice.invoice_number,
        attributes=tuple(sorted(attrs.items())),
    )


def invoice_sent_activities(
    invoices: Iterable[Invoice], clients_by_id: Mapping[int, LeadClient], window: FactDates, ctx: MappingContext
) -> Plan[PlannedActivity]:
    """Invoice Sent activities found by polling: live invoices whose ``create_date`` is in ``window``.

    Drafts, deleted invoices and invoices dated outside the window are simply not in scope (not skips).
    """
    items: list[PlannedActivity] = []
    skipped: list[Skipped] = []
    for inv in sorted(invoices, key=lambda i: i.id):
        if not invoice_is_live(inv) or not window.contains_date(inv.create_date, ctx.tz):
            continue
        email = lead_email_for(inv.customerid, clients_by_id)
        key = invoice_sent_key(ctx.account, inv.id)
        if isinstance(email, Skipped):
            skipped.append(Skipped(key, email.reason))
            continue
        items.append(_sent(inv, email, _local(start_of_day(inv.create_date, ctx.tz), ctx), ctx))
    return Plan(tuple(items), tuple(skipped))


def sent_event_activity(
    invoice: Invoice, event_time: datetime, clients_by_id: Mapping[int, LeadClient], ctx: MappingContext
) -> PlannedActivity | Skipped:
    """Invoice Sent from an ``invoice.sendByEmail`` webhook event, dated at the event (whole seconds, UTC).

    :param invoice: the invoice re-fetched after the event.
    :param event_time: when FreshBooks delivered the event (aware).
    """
    key = invoice_sent_key(ctx.account, invoice.id)
    if invoice.is_deleted:
        return Skipped(key, f"invoice {invoice.id} is deleted in FreshBooks")
    email = lead_email_for(invoice.customerid, clients_by_id)
    if isinstance(email, Skipped):
        return Skipped(key, email.reason)
    return _sent(invoice, email, to_utc(event_time).replace(microsecond=0), ctx)


def payment_activities(
    payments: Iterable[Payment],
    clients_by_id: Mapping[int, LeadClient],
    invoices_by_id: Mapping[int, NumberedInvoice],
    window: FactDates,
    ctx: MappingContext,
) -> Plan[PlannedActivity]:
    """Payment Received activities: non-deleted payments dated in ``window``, dated at their date.

    ``invoiceNumber`` is set when the paid invoice is in ``invoices_by_id`` (omitted otherwise).
    """
    items: list[PlannedActivity] = []
    skipped: list[Skipped] = []
    for pay in sorted(payments, key=lambda p: p.id):
        if pay.is_deleted or not window.contains_date(pay.date, ctx.tz):
            continue
        key = payment_received_key(ctx.account, pay.id)
        email = lead_email_for(pay.clientid, clients_by_id)
        if isinstance(email, Skipped):
            skipped.append(Skipped(key, email.reason))
            continue
        attrs = {
            "fbAccountId": ctx.fb_account_id,
            "amount": _amount(pay.amount.amount),
            "currency": pay.amount.currency,
        }
        invoice = invoices_by_id.get(pay.invoiceid)
        if invoice is not None:
            attrs["invoiceNumber"] = invoice.invoice_number
        items.append(
            PlannedActivity(
                key=key,
                lead_email=email,
                activity_type=ctx.activity_types.payment_received,
                activity_date=_local(start_of_day(pay.date, ctx.tz), ctx),
                primary_attribute_value=str(pay.id),
                attributes=tuple(sorted(attrs.items())),
            )
        )
    return Plan(tuple(items), tuple(skipped))


def overdue_activities(
    invoices: Iterable[Invoice],
    clients_by_id: Mapping[int, LeadClient],
    window: FactDates,
    ctx: MappingContext,
    payments: Iterable[Payment] = (),
) -> Plan[PlannedActivity]:
    """Invoice Overdue activities: overdue moment in ``window`` and still unpaid at ``window.end`` (or at the end
    of the overdue day, if later).

    ``amount`` is the balance that was overdue: the balance at the overdue moment
    (:func:`~airflow_provider_fbmkto.sync.health.outstanding_at`; pass the invoices' ``payments`` so a
    backfill after later payments still reports it).
    """
    pays_by_invoice: dict[int, list[Payment]] = defaultdict(list)
    for pay in payments:
        pays_by_invoice[pay.invoiceid].append(pay)
    items: list[PlannedActivity] = []
    skipped: list[Skipped] = []
    for inv in sorted(invoices, key=lambda i: i.id):
        if not invoice_is_live(inv):
            continue
        moment = overdue_moment(inv, ctx.tz)
        judged = max(to_utc(window.end), start_of_day(inv.due_date + timedelta(days=2), ctx.tz))
        if not window.contains(moment) or not invoice_unpaid_at(inv, judged, ctx.tz):
            continue
        key = invoice_overdue_key(ctx.account, inv.id, inv.due_date)
        email = lead_email_for(inv.customerid, clients_by_id)
        if isinstance(email, Skipped):
            skipped.append(Skipped(key, email.reason))
            continue
        local = _local(moment, ctx)
        attrs = {
            "fbAccountId": ctx.fb_account_id,
            "amount": _amount(outstanding_at(inv, pays_by_invoice.get(inv.id, ()), moment, ctx.tz)),
            "currency": inv.outstanding.currency,
            "dueDate": inv.due_date.isoformat(),
            "daysOverdue": str((local.date() - inv.due_date).days),
        }
        items.append(
            PlannedActivity(
                key=key,
                lead_email=email,
                activity_type=ctx.activity_types.invoice_overdue,
                activity_date=local,
                primary_attribute_value=inv.invoice_number,
                attributes=tuple(sorted(attrs.items())),
            )
        )
    return Plan(tuple(items), tuple(skipped))
