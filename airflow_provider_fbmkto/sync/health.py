"""Payment health of a client or company, as of a given moment.

Only *live* invoices count anywhere here: not drafts and not deleted (archived ones count). Pinned rules:

* an invoice is **overdue** from the start of the day after its ``due_date`` in the account time zone
  (:func:`overdue_moment`) for as long as it is unpaid;
* ``fbPaymentStatus`` is ``overdue`` if any invoice is overdue, else ``partial`` if any is partly paid, else
  ``current`` if any is unpaid, else ``paid`` if any invoice exists, else ``none``. A company takes the worst
  of its clients — the same as the status of all its clients' invoices together.

"Unpaid at a moment" uses the invoice as FreshBooks has it now plus its ``date_paid``: an invoice with an
outstanding balance is unpaid; a fully paid one was still unpaid at moments before the start of its
``date_paid`` day (so a backfill of March sees an invoice paid in April as unpaid, whenever it runs). A fully
paid invoice without a ``date_paid`` counts as paid. Partial payments have no history: "partly paid" is
judged on today's amounts.

Invoices created after ``as_of`` (their ``create_date`` starts at or after it) and payments dated after it do
not exist yet for a summary as of ``as_of``; a balance as of ``as_of`` is today's balance plus the invoice's
payments dated after it. With ``as_of`` = now (a scheduled run) all of this reduces to FreshBooks' own numbers.
"""

from __future__ import annotations

import enum
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from airflow_provider_fbmkto.sync.records import Invoice, Money, Payment
from airflow_provider_fbmkto.sync.window import start_of_day, to_utc

__all__ = [
    "CompanySummary",
    "PaymentStatus",
    "dominant_currency",
    "invoice_is_live",
    "invoice_is_overdue",
    "invoice_status",
    "invoice_unpaid_at",
    "outstanding_at",
    "overdue_moment",
    "payment_status",
    "payment_terms",
    "summarize",
    "worst",
]


class PaymentStatus(str, enum.Enum):
    """``fbPaymentStatus`` values, declared from best to worst; ``severity`` orders them.

    ``NONE < PAID < CURRENT < PARTIAL < OVERDUE`` — :func:`worst` picks the greatest.
    """

    NONE = "none"
    PAID = "paid"
    CURRENT = "current"
    PARTIAL = "partial"
    OVERDUE = "overdue"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {status: rank for rank, status in enumerate(PaymentStatus)}


def worst(statuses: Iterable[PaymentStatus]) -> PaymentStatus:
    """The most severe status (``NONE`` for no statuses)."""
    return max(statuses, key=_SEVERITY.__getitem__, default=PaymentStatus.NONE)


def invoice_is_live(invoice: Invoice) -> bool:
    """Neither draft nor deleted: the invoices every count and status is made of."""
    return not invoice.is_draft and not invoice.is_deleted


def overdue_moment(invoice: Invoice, tz: ZoneInfo) -> datetime:
    """The UTC instant an unpaid invoice becomes overdue: the start of the day after ``due_date`` in ``tz``.

    E.g. due 2025-03-09 in America/New_York → 2025-03-10T04:00Z (clocks moved to EDT on 03-09).
    """
    return start_of_day(invoice.due_date + timedelta(days=1), tz)


def _exists_at(invoice: Invoice, as_of: datetime, tz: ZoneInfo) -> bool:
    return start_of_day(invoice.create_date, tz) < as_of


def invoice_unpaid_at(invoice: Invoice, moment: datetime, tz: ZoneInfo) -> bool:
    """Whether ``invoice`` still had something to pay at ``moment`` (see the module notes)."""
    if invoice.outstanding.amount > 0:
        return True
    if invoice.date_paid is None:
        return False
    return start_of_day(invoice.date_paid, tz) >= to_utc(moment)


def outstanding_at(invoice: Invoice, payments: Iterable[Payment], as_of: datetime, tz: ZoneInfo) -> Decimal:
    """The invoice's balance at ``as_of``: today's balance plus its (non-deleted) payments dated after it.

    An invoice fully paid after ``as_of`` whose payments are not given counts with its full amount.

    :param payments: payments of any invoices; only this invoice's are used.
    """
    as_of = to_utc(as_of)
    later = sum(
        (
            p.amount.amount
            for p in payments
            if p.invoiceid == invoice.id and not p.is_deleted and start_of_day(p.date, tz) >= as_of
        ),
        Decimal(0),
    )
    return _outstanding_at(invoice, later, as_of, tz)


def _outstanding_at(invoice: Invoice, paid_after: Decimal, as_of: datetime, tz: ZoneInfo) -> Decimal:
    balance = max(invoice.outstanding.amount, Decimal(0)) + paid_after
    if balance <= 0 and invoice_unpaid_at(invoice, as_of, tz):
        return invoice.amount.amount
    return min(balance, invoice.amount.amount) if invoice.amount.amount > 0 else balance


def invoice_is_overdue(invoice: Invoice, *, as_of: datetime, tz: ZoneInfo) -> bool:
    """Whether a live invoice is overdue at ``as_of``: past its :func:`overdue_moment` and unpaid then."""
    as_of = to_utc(as_of)
    return invoice_is_live(invoice) and overdue_moment(invoice, tz) <= as_of and invoice_unpaid_at(invoice, as_of, tz)


def invoice_status(invoice: Invoice, *, as_of: datetime, tz: ZoneInfo) -> PaymentStatus:
    """The status one live invoice contributes at ``as_of`` (``NONE`` for drafts, deleted or future ones)."""
    as_of = to_utc(as_of)
    if not invoice_is_live(invoice) or not _exists_at(invoice, as_of, tz):
        return PaymentStatus.NONE
    if invoice_is_overdue(invoice, as_of=as_of, tz=tz):
        return PaymentStatus.OVERDUE
    if invoice.outstanding.amount > 0 and invoice.paid.amount > 0:
        return PaymentStatus.PARTIAL
    if invoice_unpaid_at(invoice, as_of, tz):
        return PaymentStatus.CURRENT
    return PaymentStatus.PAID


def payment_status(invoices: Iterable[Invoice], *, as_of: datetime, tz: ZoneInfo) -> PaymentStatus:
    """``fbPaymentStatus`` of a set of invoices (one client's, or all of a company's clients') at ``as_of``."""
    return worst(invoice_status(inv, as_of=as_of, tz=tz) for inv in invoices)


def payment_terms(invoices: Iterable[Invoice]) -> str | None:
    """``fbPaymentTerms`` from the most common ``due_offset_days`` of live invoices (ties: the shorter term).

    ``0`` (or less) → ``"Due on receipt"``, ``n`` → ``"Net n"``; ``None`` without live invoices.
    """
    counts = Counter(inv.due_offset_days for inv in invoices if invoice_is_live(inv))
    if not counts:
        return None
    days = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    return "Due on receipt" if days <= 0 else f"Net {days}"


def dominant_currency(invoices: Iterable[Invoice]) -> str | None:
    """The currency of the most live invoices (ties: alphabetically first); ``None`` without invoices.

    Pass *all* of an account's invoices to get the account's currency for :func:`summarize`.
    """
    counts = Counter(inv.amount.currency for inv in invoices if invoice_is_live(inv))
    if not counts:
        return None
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]


@dataclass(frozen=True, slots=True)
class CompanySummary:
    """Billing facts of one client or company, as of a moment.

    :param status: ``fbPaymentStatus``.
    :param invoice_count: live invoices that existed at ``as_of`` (``fbInvoiceCount``).
    :param currency: the currency ``outstanding`` is in (the account's dominant currency unless told).
    :param outstanding: unpaid balance in ``currency`` (``fbOutstandingBalance``); ``0`` when nothing is
        owed in that currency.
    :param other_outstanding: non-zero balances in other currencies, sorted by code — not converted, not in
        ``outstanding``; for reports.
    :param payment_terms: ``fbPaymentTerms`` or ``None``.
    :param last_payment_date: latest payment date (payments and invoices' ``date_paid``) up to ``as_of``.
    :param average_days_to_pay: mean of ``date_paid - create_date`` in days over fully paid invoices,
        rounded half-up to one decimal; ``None`` when none is fully paid.
    """

    status: PaymentStatus
    invoice_count: int
    currency: str | None
    outstanding: Decimal
    other_outstanding: tuple[Money, ...]
    payment_terms: str | None
    last_payment_date: date | None
    average_days_to_pay: Decimal | None


def summarize(
    invoices: Iterable[Invoice],
    payments: Iterable[Payment] = (),
    *,
    as_of: datetime,
    tz: ZoneInfo,
    currency: str | None = None,
) -> CompanySummary:
    """Summarize a client's (or a company's clients') invoices and payments as of ``as_of``.

    **Currency choice.** Marketo gets one number, so amounts are never added across currencies:
    ``outstanding`` is the balance in ``currency`` — callers pass the account's dominant currency
    (:func:`dominant_currency` over all the account's invoices) so every company of an account reports
    in the same unit; when omitted, the dominant currency of *these* invoices is used. Balances in other
    currencies are listed in ``other_outstanding``.

    :param invoices: the invoices (drafts, deleted and future ones are ignored).
    :param payments: their payments (deleted ones and those dated after ``as_of`` are ignored).
    :param as_of: the moment described (aware).
    :param tz: the account time zone.
    :param currency: ISO code for ``outstanding``; see above.
    """
    as_of = to_utc(as_of)
    live = [inv for inv in invoices if invoice_is_live(inv) and _exists_at(inv, as_of, tz)]
    unit = currency if currency is not None else dominant_currency(live)

    def paid_by(day: date | None) -> bool:
        return day is not None and start_of_day(day, tz) < as_of

    live_payments = [p for p in payments if not p.is_deleted]
    paid_later: dict[int, Decimal] = defaultdict(Decimal)
    for p in live_payments:
        if not paid_by(p.date):
            paid_later[p.invoiceid] += p.amount.amount
    balances: dict[str, Decimal] = defaultdict(Decimal)
    for inv in live:
        balances[inv.outstanding.currency] += _outstanding_at(inv, paid_later.get(inv.id, Decimal(0)), as_of, tz)
    outstanding = balances.get(unit, Decimal(0)) if unit is not None else Decimal(0)
    others = tuple(Money(amount, code) for code, amount in sorted(balances.items()) if code != unit and amount)

    paid_days = [p.date for p in live_payments if paid_by(p.date)]
    paid_days += [inv.date_paid for inv in live if inv.date_paid is not None and paid_by(inv.date_paid)]
    durations = [
        (inv.date_paid - inv.create_date).days
        for inv in live
        if inv.date_paid is not None and not invoice_unpaid_at(inv, as_of, tz)
    ]
    average: Decimal | None = None
    if durations:
        mean = Decimal(sum(durations)) / Decimal(len(durations))
        average = mean.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)

    return CompanySummary(
        status=payment_status(live, as_of=as_of, tz=tz),
        invoice_count=len(live),
        currency=unit,
        outstanding=outstanding,
        other_outstanding=others,
        payment_terms=payment_terms(live),
        last_payment_date=max(paid_days, default=None),
        average_days_to_pay=average,
    )
