"""Typed FreshBooks records, as the FreshBooks hook hands them to the domain.

Money is ``Decimal``; datetimes are timezone-aware UTC; dates are plain ``date`` values as FreshBooks
gives them (they carry no time zone: the account's time zone gives them one where a moment is needed).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import NamedTuple


class VisState(enum.IntEnum):
    """FreshBooks ``vis_state``: deleted records are hidden unless asked for, archived ones are not."""

    ACTIVE = 0
    DELETED = 1
    ARCHIVED = 2


class InvoiceStatus(enum.IntEnum):
    """FreshBooks invoice ``status`` codes."""

    DISPUTED = 0
    DRAFT = 1
    SENT = 2
    VIEWED = 3
    PAID = 4
    AUTO_PAID = 5
    RETRY = 6
    FAILED = 7
    PARTIAL = 8


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class Client:
    id: int
    email: str
    fname: str
    lname: str
    organization: str
    currency_code: str
    updated: datetime  # aware, UTC (FreshBooks sends naive US/Eastern wall time)
    vis_state: VisState = VisState.ACTIVE

    @property
    def is_deleted(self) -> bool:
        return self.vis_state == VisState.DELETED


class ClientContact(NamedTuple):
    """What an activity needs of a client -- whose lead it goes on -- read without the rest of the record (the
    activity passes of a large account look up hundreds of thousands of clients)."""

    id: int
    email: str
    vis_state: VisState = VisState.ACTIVE

    @property
    def is_deleted(self) -> bool:
        return self.vis_state == VisState.DELETED


class InvoiceNumber(NamedTuple):
    """What a Payment Received activity needs of the paid invoice."""

    id: int
    invoice_number: str


@dataclass(frozen=True, slots=True)
class Invoice:
    id: int
    invoice_number: str
    customerid: int
    create_date: date
    due_date: date
    due_offset_days: int
    amount: Money
    outstanding: Money
    paid: Money
    status: InvoiceStatus
    v3_status: str
    payment_status: str
    date_paid: date | None
    updated: datetime  # aware, UTC
    vis_state: VisState = VisState.ACTIVE

    @property
    def is_deleted(self) -> bool:
        return self.vis_state == VisState.DELETED

    @property
    def is_draft(self) -> bool:
        return self.status == InvoiceStatus.DRAFT


@dataclass(frozen=True, slots=True)
class Payment:
    id: int
    invoiceid: int
    clientid: int
    amount: Money
    date: date
    type: str
    updated: datetime  # aware, UTC
    vis_state: VisState = VisState.ACTIVE

    @property
    def is_deleted(self) -> bool:
        return self.vis_state == VisState.DELETED
