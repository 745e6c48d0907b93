"""Small builders of FreshBooks records for the sync tests (defaults are boring on purpose)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

from airflow_provider_fbmkto.sync.records import Client, Invoice, InvoiceStatus, Money, Payment, VisState

UPDATED = datetime(2025, 1, 1, tzinfo=timezone.utc)


def client(
    id: int = 1,
    email: str = "ann@bigco.io",
    fname: str = "Ann",
    lname: str = "Lee",
    organization: str = "BigCo",
    currency: str = "USD",
    vis_state: VisState = VisState.ACTIVE,
) -> Client:
    return Client(id, email, fname, lname, organization, currency, UPDATED, vis_state)


def invoice(
    id: int = 1,
    customerid: int = 1,
    create_date: date = date(2025, 3, 1),
    due_date: date | None = None,
    amount: str = "100.00",
    outstanding: str | None = None,
    paid: str | None = None,
    currency: str = "USD",
    status: InvoiceStatus = InvoiceStatus.SENT,
    date_paid: date | None = None,
    due_offset_days: int | None = None,
    number: str | None = None,
    vis_state: VisState = VisState.ACTIVE,
) -> Invoice:
    """An invoice; ``outstanding`` defaults to the whole amount, ``paid`` to amount - outstanding."""
    due = due_date if due_date is not None else create_date
    out = Decimal(outstanding if outstanding is not None else amount)
    paid_amount = Decimal(paid) if paid is not None else Decimal(amount) - out
    return Invoice(
        id=id,
        invoice_number=number if number is not None else f"INV-{id:04d}",
        customerid=customerid,
        create_date=create_date,
        due_date=due,
        due_offset_days=due_offset_days if due_offset_days is not None else (due - create_date).days,
        amount=Money(Decimal(amount), currency),
        outstanding=Money(out, currency),
        paid=Money(paid_amount, currency),
        status=status,
        v3_status="",
        payment_status="",
        date_paid=date_paid,
        updated=UPDATED,
        vis_state=vis_state,
    )


def payment(
    id: int = 1,
    invoiceid: int = 1,
    clientid: int = 1,
    amount: str = "100.00",
    on: date = date(2025, 3, 10),
    currency: str = "USD",
    vis_state: VisState = VisState.ACTIVE,
) -> Payment:
    return Payment(id, invoiceid, clientid, Money(Decimal(amount), currency), on, "Check", UPDATED, vis_state)
