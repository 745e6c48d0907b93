"""State and rules of the FreshBooks emulator: clients, invoices, payments, their invariants and search.

No HTTP here (moto's ``models.py``): handlers parse requests and render envelopes, this module keeps the
records, enforces the rules (payments drive invoice status, deleted records hide, search semantics) and raises
typed errors from ``errors.py``. All times are aware UTC inside; they are rendered as FreshBooks' naive
US/Eastern strings only on the way out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

from .errors import NotFound, RecordNotFound
from .fields import KINDS, normalize_kind, parse_client_fields, parse_invoice_fields, parse_payment_fields
from .search import SEARCH_KEYS, Search, matches
from .timeutil import EASTERN, UTC, eastern_date, eastern_str

FIRST_IDS = {"client": 100001, "invoice": 200001, "payment": 300001}
CENT = Decimal("0.01")
_Date = date  # PaymentRecord has a field named `date`

EventListener = Callable[[str, int], None]


@dataclass(slots=True)
class ClientRecord:
    id: int
    email: str
    fname: str
    lname: str
    organization: str
    currency_code: str
    created: datetime
    updated: datetime
    updated_day: date
    vis_state: int = 0


@dataclass(slots=True)
class InvoiceRecord:
    id: int
    invoice_number: str
    customerid: int
    create_date: date
    due_offset_days: int
    amount: Decimal
    currency_code: str
    created: datetime
    updated: datetime
    updated_day: date
    base_status: int = 1  # 0 disputed, 1 draft, 2 sent, 3 viewed, 6 retry, 7 failed (payments add 4/5/8)
    auto_paid: bool = False
    vis_state: int = 0
    paid: Decimal = Decimal("0.00")
    date_paid: date | None = None

    @property
    def due_date(self) -> date:
        return self.create_date + timedelta(days=self.due_offset_days)

    @property
    def outstanding(self) -> Decimal:
        return self.amount - self.paid

    @property
    def status(self) -> int:
        if self.paid > 0 and self.paid >= self.amount:
            return 5 if self.auto_paid else 4
        if self.paid > 0:
            return 8
        return self.base_status


@dataclass(slots=True)
class PaymentRecord:
    id: int
    invoiceid: int
    clientid: int
    amount: Decimal
    date: _Date
    type: str
    created: datetime
    updated: datetime
    updated_day: _Date
    vis_state: int = 0


Record = ClientRecord | InvoiceRecord | PaymentRecord


def money(amount: Decimal, code: str) -> dict[str, str]:
    return {"amount": str(amount.quantize(CENT)), "code": code}


@dataclass
class _Tables:
    clients: dict[int, ClientRecord] = field(default_factory=dict)
    invoices: dict[int, InvoiceRecord] = field(default_factory=dict)
    payments: dict[int, PaymentRecord] = field(default_factory=dict)
    payments_by_invoice: dict[int, list[int]] = field(default_factory=dict)
    next_ids: dict[str, int] = field(default_factory=lambda: dict(FIRST_IDS))
    next_invoice_number: int = 1


class FreshBooksModel:
    """The business's records and the rules over them. Thread-safe (one re-entrant lock).

    Two behaviours FreshBooks does not document are switches (see ``FreshBooksEmulator``):

    :param clock: returns the current aware UTC instant (the emulator's clock).
    :param account_id: the accounting ``account_id`` (``accounting_systemid`` on records).
    :param payment_touches_invoice: recording, changing or deleting a payment also bumps its invoice's
        ``updated`` (and emits ``invoice.update``); with ``False`` only the invoice's amounts change.
    :param search_zone: the zone whose calendar days ``search[updated_min|max]`` compare ``updated`` in.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], datetime],
        account_id: str,
        payment_touches_invoice: bool = True,
        search_zone: ZoneInfo = EASTERN,
    ) -> None:
        self.clock = clock
        self.account_id = account_id
        self.payment_touches_invoice = payment_touches_invoice
        self.search_zone = search_zone
        self.lock = threading.RLock()
        self.listeners: list[EventListener] = []
        self._t = _Tables()
        self._version = 0
        self._cache: OrderedDict[tuple[Any, ...], list[int]] = OrderedDict()

    # --- basics -------------------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock().astimezone(UTC)

    def today(self) -> date:
        """Today in US/Eastern by the emulator clock (overdue is judged against it)."""
        return eastern_date(self.now())

    def reset(self) -> None:
        with self.lock:
            self._t = _Tables()
            self._changed()

    def counts(self) -> dict[str, int]:
        return {"clients": len(self._t.clients), "invoices": len(self._t.invoices), "payments": len(self._t.payments)}

    @property
    def clients(self) -> dict[int, ClientRecord]:
        return self._t.clients

    @property
    def invoices(self) -> dict[int, InvoiceRecord]:
        return self._t.invoices

    @property
    def payments(self) -> dict[int, PaymentRecord]:
        return self._t.payments

    def table(self, kind: str) -> dict[int, Any]:
        if kind == "client":
            return self._t.clients
        if kind == "invoice":
            return self._t.invoices
        return self._t.payments

    def configure(self, *, payment_touches_invoice: bool | None = None, search_zone: ZoneInfo | None = None) -> None:
        """Change the undocumented behaviours (``None`` keeps one); searches are recomputed."""
        with self.lock:
            if payment_touches_invoice is not None:
                self.payment_touches_invoice = payment_touches_invoice
            if search_zone is not None:
                self.search_zone = search_zone
            self._changed()

    def _changed(self) -> None:
        self._version += 1
        self._cache.clear()

    def _emit(self, name: str, object_id: int) -> None:
        for listener in list(self.listeners):
            listener(name, object_id)

    def next_id(self, kind: str) -> int:
        value = self._t.next_ids[kind]
        self._t.next_ids[kind] = value + 1
        return value

    def _touch(self, rec: Record, when: datetime | None = None) -> None:
        rec.updated = when or self.now()
        rec.updated_day = eastern_date(rec.updated)

    # --- inserts (used by the public add_* and by the seed generator, which passes emit=False) -------------

    def insert_client(self, rec: ClientRecord) -> ClientRecord:
        with self.lock:
            self._t.clients[rec.id] = rec
            self._t.next_ids["client"] = max(self._t.next_ids["client"], rec.id + 1)
            self._changed()
        return rec

    def insert_invoice(self, rec: InvoiceRecord) -> InvoiceRecord:
        with self.lock:
            self._t.invoices[rec.id] = rec
            self._t.next_ids["invoice"] = max(self._t.next_ids["invoice"], rec.id + 1)
            if rec.invoice_number.isdigit():
                self._t.next_invoice_number = max(self._t.next_invoice_number, int(rec.invoice_number) + 1)
            self._changed()
        return rec

    def insert_payment(self, rec: PaymentRecord) -> PaymentRecord:
        with self.lock:
            self._t.payments[rec.id] = rec
            self._t.payments_by_invoice.setdefault(rec.invoiceid, []).append(rec.id)
            self._t.next_ids["payment"] = max(self._t.next_ids["payment"], rec.id + 1)
            self.recompute_invoice(rec.invoiceid, touch=rec.updated if self.payment_touches_invoice else None)
            self._changed()
        return rec

    def next_invoice_number(self) -> str:
        number = self._t.next_invoice_number
        self._t.next_invoice_number += 1
        return f"{number:07d}"

    def recompute_invoice(self, invoice_id: int, *, touch: datetime | None = None) -> None:
        """Derive ``paid``/``date_paid`` (hence status, v3_status, payment_status) from live payments."""
        inv = self._t.invoices[invoice_id]
        live = [self._t.payments[p] for p in self._t.payments_by_invoice.get(invoice_id, [])]
        live = [p for p in live if p.vis_state != 1]
        inv.paid = sum((p.amount for p in live), Decimal("0.00"))
        inv.date_paid = max(p.date for p in live) if live and inv.paid >= inv.amount else None
        if touch is not None and touch > inv.updated:
            self._touch(inv, touch)

    # --- the emulator's public record API ------------------------------------------------------------------

    def add(self, kind: str, fields: dict[str, Any]) -> Record:
        """Create a record from user fields (defaults filled, rules checked) and emit ``<kind>.create``."""
        kind = normalize_kind(kind)
        with self.lock:
            now = self.now()
            events: list[tuple[str, int]] = []
            if kind == "client":
                rec: Record = self.insert_client(parse_client_fields(self, fields, now))
            elif kind == "invoice":
                rec = self.insert_invoice(parse_invoice_fields(self, fields, now))
            else:
                rec = self.insert_payment(parse_payment_fields(self, fields, now))
                if self.payment_touches_invoice:
                    events.append(("invoice.update", rec.invoiceid))
            events.insert(0, (f"{kind}.create", rec.id))
        for name, object_id in events:
            self._emit(name, object_id)
        return rec

    def update(self, kind: str, record_id: int, fields: dict[str, Any]) -> Record:
        """Change fields of a record, bump ``updated`` and emit ``<kind>.update`` (or ``.delete`` for vis_state 1)."""
        kind = normalize_kind(kind)
        with self.lock:
            rec = cast("Record | None", self.table(kind).get(record_id))
            if rec is None:
                raise RecordNotFound(kind, record_id)
            parser = {"client": parse_client_fields, "invoice": parse_invoice_fields, "payment": parse_payment_fields}
            changes = parser[kind](self, fields, self.now(), existing=rec)
            was_deleted = rec.vis_state == 1
            for name, value in changes.items():
                setattr(rec, name, value)
            if "updated" not in changes:
                self._touch(rec)
            else:
                rec.updated_day = eastern_date(rec.updated)
            events = [(f"{kind}.{'delete' if rec.vis_state == 1 and not was_deleted else 'update'}", rec.id)]
            if isinstance(rec, PaymentRecord):
                touch = self.payment_touches_invoice
                self.recompute_invoice(rec.invoiceid, touch=rec.updated if touch else None)
                if touch:
                    events.append(("invoice.update", rec.invoiceid))
            elif isinstance(rec, InvoiceRecord):
                self.recompute_invoice(rec.id)
            self._changed()
        for name, object_id in events:
            self._emit(name, object_id)
        return rec

    def delete(self, kind: str, record_id: int) -> Record:
        """Soft-delete (``vis_state`` 1), as FreshBooks does; bumps ``updated``."""
        return self.update(kind, record_id, {"vis_state": 1})

    def send_invoice(self, invoice_id: int) -> InvoiceRecord:
        """Email an invoice: a draft becomes sent; emits ``invoice.sendByEmail``."""
        with self.lock:
            inv = self._t.invoices.get(invoice_id)
            if inv is None:
                raise RecordNotFound("invoice", invoice_id)
            if inv.base_status == 1:
                inv.base_status = 2
            self._touch(inv)
            self._changed()
        self._emit("invoice.sendByEmail", invoice_id)
        return inv

    # --- reads ---------------------------------------------------------------------------------------------

    def get(self, kind: str, record_id: int) -> Record:
        """A single record by id, deleted ones included (FreshBooks' get-by-id still finds them)."""
        rec = cast("Record | None", self.table(kind).get(record_id))
        if rec is None:
            singular = {"client": "Client", "invoice": "Invoice", "payment": "Payment"}[kind]
            id_field = {"client": "userid", "invoice": "invoiceid", "payment": "logid"}[kind]
            raise NotFound(f"{singular} not found.", field=id_field, obj=kind, value=str(record_id))
        return rec

    def search(self, kind: str, search: Search) -> list[int]:
        """Ids of the records matching ``search``, ascending; cached until the next change or day."""
        key = (kind, search, self._version, self.today())
        with self.lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
            ids = [rec.id for rec in self._matching(kind, search)]
            ids.sort()
            self._cache[key] = ids
            while len(self._cache) > 64:
                self._cache.popitem(last=False)
            return ids

    def _matching(self, kind: str, s: Search) -> Iterable[Record]:
        today, zone = self.today(), self.search_zone
        eastern = zone.key == EASTERN.key

        def v3(inv: InvoiceRecord) -> str:
            return self.v3_status(inv, today)

        for rec in self.table(kind).values():
            day = rec.updated_day if eastern else rec.updated.astimezone(zone).date()
            if matches(kind, rec, s, updated_day=day, v3_status=v3):
                yield rec

    # --- rendering (the API's object shapes) ---------------------------------------------------------------

    @staticmethod
    def v3_status(inv: InvoiceRecord, today: date) -> str:
        status = inv.status
        fixed = {1: "draft", 4: "paid", 5: "autopaid", 0: "disputed", 6: "retry", 7: "failed"}
        if status in fixed:
            return fixed[status]
        if inv.outstanding > 0 and inv.due_date < today:
            return "overdue"
        return {8: "partial", 2: "sent", 3: "viewed"}[status]

    def render(self, rec: Record) -> dict[str, Any]:
        if isinstance(rec, ClientRecord):
            return {
                "id": rec.id,
                "userid": rec.id,
                "accounting_systemid": self.account_id,
                "email": rec.email,
                "fname": rec.fname,
                "lname": rec.lname,
                "organization": rec.organization,
                "currency_code": rec.currency_code,
                "signup_date": rec.created.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),  # UTC, unlike `updated`
                "updated": eastern_str(rec.updated),
                "vis_state": rec.vis_state,
            }
        if isinstance(rec, InvoiceRecord):
            client = self._t.clients.get(rec.customerid)
            status = rec.status
            return {
                "id": rec.id,
                "invoiceid": rec.id,
                "accounting_systemid": self.account_id,
                "invoice_number": rec.invoice_number,
                "customerid": rec.customerid,
                "fname": client.fname if client else "",
                "lname": client.lname if client else "",
                "organization": client.organization if client else "",
                "create_date": rec.create_date.isoformat(),
                "due_date": rec.due_date.isoformat(),
                "due_offset_days": rec.due_offset_days,
                "amount": money(rec.amount, rec.currency_code),
                "outstanding": money(rec.outstanding, rec.currency_code),
                "paid": money(rec.paid, rec.currency_code),
                "status": status,
                "v3_status": self.v3_status(rec, self.today()),
                "payment_status": "paid" if status in (4, 5) else "partial" if status == 8 else "unpaid",
                "date_paid": rec.date_paid.isoformat() if rec.date_paid else None,
                "currency_code": rec.currency_code,
                "created_at": eastern_str(rec.created),
                "updated": eastern_str(rec.updated),
                "vis_state": rec.vis_state,
            }
        inv = self._t.invoices.get(rec.invoiceid)
        return {
            "id": rec.id,
            "logid": rec.id,
            "accounting_systemid": self.account_id,
            "invoiceid": rec.invoiceid,
            "clientid": rec.clientid,
            "amount": money(rec.amount, inv.currency_code if inv else "USD"),
            "date": rec.date.isoformat(),
            "type": rec.type,
            "note": "",
            "updated": eastern_str(rec.updated),
            "vis_state": rec.vis_state,
        }


__all__ = [
    "KINDS",
    "SEARCH_KEYS",
    "ClientRecord",
    "FreshBooksModel",
    "InvoiceRecord",
    "PaymentRecord",
    "Record",
    "Search",
]
