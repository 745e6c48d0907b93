"""Payment health: overdue moments, the pinned status rule, summaries — expected values by hand."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sync_factories import invoice, payment

from airflow_provider_fbmkto.sync.health import (
    PaymentStatus,
    dominant_currency,
    invoice_is_overdue,
    outstanding_at,
    overdue_moment,
    payment_status,
    payment_terms,
    summarize,
    worst,
)
from airflow_provider_fbmkto.sync.records import Invoice, InvoiceStatus, Money, VisState

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
LATER = datetime(2026, 1, 1, tzinfo=UTC)


def z(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


@pytest.mark.parametrize(
    ("due", "tz", "moment"),
    [
        (date(2025, 3, 9), NY, z(2025, 3, 10, 4)),  # EDT began on the 9th: midnight of the 10th is 04:00Z
        (date(2025, 3, 8), NY, z(2025, 3, 9, 5)),  # midnight of the 9th is still EST
        (date(2025, 11, 1), NY, z(2025, 11, 2, 4)),  # midnight of Nov 2 is still EDT
        (date(2025, 11, 2), NY, z(2025, 11, 3, 5)),
        (date(2024, 12, 31), NY, z(2025, 1, 1, 5)),  # year end
        (date(2024, 2, 29), NY, z(2024, 3, 1, 5)),  # leap day
        (date(2025, 3, 30), ZoneInfo("Europe/London"), z(2025, 3, 30, 23)),  # BST from Mar 30
        (date(2025, 3, 9), ZoneInfo("UTC"), z(2025, 3, 10)),
    ],
)
def test_overdue_moment(due: date, tz: ZoneInfo, moment: datetime) -> None:
    assert overdue_moment(invoice(due_date=due, create_date=due - timedelta(days=30)), tz) == moment


def test_overdue_starts_exactly_at_the_moment() -> None:
    inv = invoice(create_date=date(2025, 2, 7), due_date=date(2025, 3, 9))
    assert not invoice_is_overdue(inv, as_of=z(2025, 3, 10, 3, 59, 59, 999999), tz=NY)
    assert invoice_is_overdue(inv, as_of=z(2025, 3, 10, 4), tz=NY)


@pytest.mark.parametrize(
    ("kwargs", "overdue"),
    [
        ({}, True),
        ({"outstanding": "0.00", "date_paid": date(2025, 3, 20)}, False),  # paid before as_of
        ({"outstanding": "0.00", "date_paid": date(2025, 4, 10)}, True),  # paid after as_of: unpaid then
        ({"outstanding": "0.00", "date_paid": date(2025, 4, 1)}, True),  # paid on the as_of day: after its start
        ({"outstanding": "0.00"}, False),  # paid, date unknown
        ({"outstanding": "40.00"}, True),  # partly paid
        ({"status": InvoiceStatus.DRAFT}, False),
        ({"vis_state": VisState.DELETED}, False),
        ({"vis_state": VisState.ARCHIVED}, True),
    ],
    ids=["unpaid", "paid-before", "paid-after", "paid-on-as-of-day", "paid-no-date", "partial", "draft", "deleted",
         "archived"],
)  # fmt: skip
def test_invoice_is_overdue_as_of(kwargs: dict[str, Any], overdue: bool) -> None:
    inv = invoice(create_date=date(2025, 2, 1), due_date=date(2025, 3, 1), **kwargs)
    assert invoice_is_overdue(inv, as_of=z(2025, 4, 1, 4), tz=NY) is overdue  # 2025-04-01 00:00 EDT


AS_OF = z(2025, 4, 1, 4)
NOT_DUE: dict[str, Any] = {"create_date": date(2025, 3, 20), "due_date": date(2025, 4, 19)}
PAST_DUE: dict[str, Any] = {"create_date": date(2025, 2, 1), "due_date": date(2025, 3, 3)}
PAID: dict[str, Any] = {"create_date": date(2025, 2, 1), "outstanding": "0.00", "date_paid": date(2025, 2, 20)}


@pytest.mark.parametrize(
    ("invoices", "expected"),
    [
        ([], PaymentStatus.NONE),
        ([invoice(status=InvoiceStatus.DRAFT, **NOT_DUE)], PaymentStatus.NONE),
        ([invoice(vis_state=VisState.DELETED, **PAST_DUE)], PaymentStatus.NONE),
        ([invoice(create_date=date(2025, 4, 1))], PaymentStatus.NONE),  # created at as_of: not yet there
        ([invoice(**PAID)], PaymentStatus.PAID),
        ([invoice(**PAID), invoice(id=2, **NOT_DUE)], PaymentStatus.CURRENT),
        ([invoice(id=2, outstanding="60.00", **NOT_DUE), invoice(id=3, **NOT_DUE)], PaymentStatus.PARTIAL),
        ([invoice(id=2, outstanding="60.00", **NOT_DUE), invoice(id=3, **PAST_DUE)], PaymentStatus.OVERDUE),
        ([invoice(id=3, outstanding="60.00", **PAST_DUE)], PaymentStatus.OVERDUE),  # partly paid, past due
        ([invoice(id=4, outstanding="0.00", date_paid=date(2025, 5, 1), **NOT_DUE)], PaymentStatus.CURRENT),
    ],
    ids=["none", "draft-only", "deleted-only", "future", "paid", "paid+current", "partial", "overdue-wins",
         "partial-overdue", "paid-after-as-of"],
)  # fmt: skip
def test_payment_status_pinned_rule(invoices: list[Invoice], expected: PaymentStatus) -> None:
    assert payment_status(invoices, as_of=AS_OF, tz=NY) is expected


def test_status_order_for_worst_of() -> None:
    order = [PaymentStatus.NONE, PaymentStatus.PAID, PaymentStatus.CURRENT, PaymentStatus.PARTIAL,
             PaymentStatus.OVERDUE]  # fmt: skip
    assert sorted(PaymentStatus, key=lambda s: s.severity) == order
    assert worst([]) is PaymentStatus.NONE
    assert worst([PaymentStatus.PAID, PaymentStatus.OVERDUE, PaymentStatus.CURRENT]) is PaymentStatus.OVERDUE


invoice_strategy = st.builds(
    lambda i, created, term, amount, paid_part, status, deleted: invoice(
        id=i,
        create_date=date(2025, 1, 1) + timedelta(days=created),
        due_date=date(2025, 1, 1) + timedelta(days=created + term),
        amount=str(amount),
        outstanding=str(amount - min(paid_part, amount)),
        status=status,
        vis_state=VisState.DELETED if deleted else VisState.ACTIVE,
    ),
    st.integers(1, 10_000),
    st.integers(0, 120),
    st.sampled_from([0, 15, 30]),
    st.integers(1, 500),
    st.sampled_from([0, 0, 1, 250, 1000]),
    st.sampled_from([InvoiceStatus.SENT, InvoiceStatus.DRAFT, InvoiceStatus.PARTIAL, InvoiceStatus.PAID]),
    st.booleans(),
)
as_of_strategy = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2025, 8, 1), timezones=st.just(UTC))


@given(st.lists(invoice_strategy, max_size=8), st.lists(invoice_strategy, max_size=8), as_of_strategy)
def test_company_status_is_worst_of_its_clients(a: list[Invoice], b: list[Invoice], as_of: datetime) -> None:
    together = payment_status(a + b, as_of=as_of, tz=NY)
    assert together is worst([payment_status(a, as_of=as_of, tz=NY), payment_status(b, as_of=as_of, tz=NY)])
    # adding invoices never makes the status better
    assert together.severity >= payment_status(a, as_of=as_of, tz=NY).severity


@given(st.lists(invoice_strategy, max_size=8), as_of_strategy, st.integers(1, 400))
def test_an_unpaid_invoice_only_gets_worse_with_time(invoices: list[Invoice], as_of: datetime, days: int) -> None:
    later = as_of + timedelta(days=days)
    for inv in invoices:
        if invoice_is_overdue(inv, as_of=as_of, tz=NY) and inv.outstanding.amount > 0:
            assert invoice_is_overdue(inv, as_of=later, tz=NY)


@pytest.mark.parametrize(
    ("offsets", "expected"),
    [
        ([], None),
        ([30], "Net 30"),
        ([30, 30, 15], "Net 30"),
        ([15, 30], "Net 15"),  # tie: the shorter term
        ([0, 0, 30], "Due on receipt"),
    ],
)
def test_payment_terms(offsets: list[int], expected: str | None) -> None:
    invoices = [invoice(id=i, due_offset_days=d) for i, d in enumerate(offsets)]
    invoices.append(invoice(id=99, due_offset_days=7, status=InvoiceStatus.DRAFT))  # drafts never count
    assert payment_terms(invoices) == expected


def test_dominant_currency_counts_invoices_not_amounts() -> None:
    invoices = [
        invoice(id=1, currency="EUR", amount="9000.00"),
        invoice(id=2, currency="USD", amount="1.00"),
        invoice(id=3, currency="USD", amount="1.00"),
        invoice(id=4, currency="CAD", status=InvoiceStatus.DRAFT),
        invoice(id=5, currency="CAD", status=InvoiceStatus.DRAFT),
        invoice(id=6, currency="CAD", status=InvoiceStatus.DRAFT),
    ]
    assert dominant_currency(invoices) == "USD"
    assert dominant_currency(invoices[:2]) == "EUR"  # 1:1 tie -> alphabetical
    assert dominant_currency([]) is None


def test_summarize_a_company() -> None:
    invoices = [
        # paid in 10 days
        invoice(id=1, create_date=date(2025, 1, 1), due_date=date(2025, 1, 31), outstanding="0.00",
                date_paid=date(2025, 1, 11)),
        # paid in 15 days
        invoice(id=2, create_date=date(2025, 2, 1), due_date=date(2025, 3, 3), outstanding="0.00",
                date_paid=date(2025, 2, 16)),
        # 250 of 400 still open, past due on Apr 1 -> overdue
        invoice(id=3, create_date=date(2025, 2, 10), due_date=date(2025, 3, 12), amount="400.00",
                outstanding="250.00"),
        # EUR, not due yet
        invoice(id=4, create_date=date(2025, 3, 20), due_date=date(2025, 4, 4), due_offset_days=15,
                amount="80.00", currency="EUR"),
        invoice(id=5, create_date=date(2025, 3, 25), status=InvoiceStatus.DRAFT, amount="999.00"),
        invoice(id=6, create_date=date(2025, 3, 25), vis_state=VisState.DELETED, amount="999.00"),
    ]  # fmt: skip
    payments = [
        payment(id=11, invoiceid=1, on=date(2025, 1, 11)),
        payment(id=12, invoiceid=2, on=date(2025, 2, 16)),
        payment(id=13, invoiceid=3, amount="150.00", on=date(2025, 3, 5)),
        payment(id=14, invoiceid=3, amount="1.00", on=date(2025, 3, 28), vis_state=VisState.DELETED),
    ]
    s = summarize(invoices, payments, as_of=AS_OF, tz=NY)
    assert s.status is PaymentStatus.OVERDUE
    assert s.invoice_count == 4
    assert s.currency == "USD"  # 3 USD invoices vs 1 EUR
    assert s.outstanding == Decimal("250.00")
    assert s.other_outstanding == (Money(Decimal("80.00"), "EUR"),)
    assert s.payment_terms == "Net 30"
    assert s.last_payment_date == date(2025, 3, 5)  # the deleted payment of Mar 28 does not count
    assert s.average_days_to_pay == Decimal("12.5")  # (10 + 15) / 2


def test_summarize_in_the_accounts_currency() -> None:
    s = summarize([invoice(id=1, currency="EUR", amount="80.00")], as_of=LATER, tz=NY, currency="USD")
    assert s.currency == "USD"
    assert s.outstanding == Decimal(0)
    assert s.other_outstanding == (Money(Decimal("80.00"), "EUR"),)


@pytest.mark.parametrize(
    ("days", "expected"),
    [([1, 2], "1.5"), ([1, 1, 2], "1.3"), ([1, 2, 2], "1.7"), ([2, 2, 2, 3], "2.3"), ([0], "0.0")],
    ids=["half", "third-down", "two-thirds-up", "half-up-not-even", "same-day"],
)
def test_average_days_to_pay_rounds_half_up(days: list[int], expected: str) -> None:
    invoices = [
        invoice(id=i, create_date=date(2025, 1, 1), outstanding="0.00", date_paid=date(2025, 1, 1) + timedelta(days=d))
        for i, d in enumerate(days)
    ]
    assert summarize(invoices, as_of=LATER, tz=NY).average_days_to_pay == Decimal(expected)


def test_summary_without_invoices() -> None:
    s = summarize([], as_of=LATER, tz=NY)
    assert (s.status, s.invoice_count, s.currency, s.outstanding, s.payment_terms, s.last_payment_date,
            s.average_days_to_pay) == (PaymentStatus.NONE, 0, None, Decimal(0), None, None, None)  # fmt: skip


def test_summary_as_of_the_past_sees_later_payments_as_unpaid() -> None:
    # Invoice of 300 due Mar 3, paid 100 on Mar 20 and 200 on Apr 10. As of Apr 1 (EDT midnight) 200 was open.
    inv = invoice(id=1, create_date=date(2025, 2, 1), due_date=date(2025, 3, 3), amount="300.00",
                  outstanding="0.00", date_paid=date(2025, 4, 10))  # fmt: skip
    pays = [payment(id=1, amount="100.00", on=date(2025, 3, 20)), payment(id=2, amount="200.00", on=date(2025, 4, 10))]
    s = summarize([inv], pays, as_of=AS_OF, tz=NY)
    assert s.status is PaymentStatus.OVERDUE
    assert s.outstanding == Decimal("200.00")
    assert s.last_payment_date == date(2025, 3, 20)
    assert s.average_days_to_pay is None  # not fully paid yet as of Apr 1
    assert outstanding_at(inv, pays, AS_OF, NY) == Decimal("200.00")
    assert outstanding_at(inv, [], AS_OF, NY) == Decimal("300.00")  # payments unknown: the whole amount
    assert outstanding_at(inv, pays, LATER, NY) == Decimal(0)
