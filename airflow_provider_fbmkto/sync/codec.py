"""JSON round trip of the typed records, for staging files and the state DB's FreshBooks mirror.

``to_json(record)`` gives a flat dict of JSON scalars (Decimal and dates as strings, datetimes as ISO 8601
UTC); ``from_json(kind, data)`` rebuilds the same frozen dataclass, so ``from_json(k, to_json(r)) == r``.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from airflow_provider_fbmkto.sync import jsontext
from airflow_provider_fbmkto.sync.records import Client, Invoice, InvoiceStatus, Money, Payment, VisState

RecordKind = Literal["client", "invoice", "payment"]
Record = Client | Invoice | Payment
KINDS: tuple[RecordKind, ...] = ("client", "invoice", "payment")


def kind_of(record: Record) -> RecordKind:
    if isinstance(record, Client):
        return "client"
    if isinstance(record, Invoice):
        return "invoice"
    return "payment"


def _money(m: Money) -> dict[str, str]:
    return {"amount": format(m.amount, "f"), "code": m.currency}


def _m(d: Any) -> Money:
    amount, code = d["amount"], d["code"]
    return Money(Decimal(amount if type(amount) is str else str(amount)), code if type(code) is str else str(code))


# Enum lookups by value: ``VisState(n)`` goes through EnumMeta.__call__ (slow, and the mirror decodes a
# million records a run); an unknown value still raises ValueError through the Enum itself.
_VIS = {int(v): v for v in VisState}
_STATUS = {int(v): v for v in InvoiceStatus}


def vis_state_of(raw: Any) -> VisState:
    """The :class:`VisState` of a stored ``vis_state``."""
    value = int(raw)
    found = _VIS.get(value)
    return found if found is not None else VisState(value)


def _status(raw: Any) -> InvoiceStatus:
    value = int(raw)
    found = _STATUS.get(value)
    return found if found is not None else InvoiceStatus(value)


def _d(value: Any) -> date | None:
    return date.fromisoformat(value) if value else None


def to_json(record: Record) -> dict[str, Any]:
    """A JSON-ready dict of ``record`` (see the module docstring)."""
    common = {"id": record.id, "updated": record.updated.isoformat(), "vis_state": int(record.vis_state)}
    if isinstance(record, Client):
        return {
            **common,
            "email": record.email,
            "fname": record.fname,
            "lname": record.lname,
            "organization": record.organization,
            "currency_code": record.currency_code,
        }
    if isinstance(record, Invoice):
        return {
            **common,
            "invoice_number": record.invoice_number,
            "customerid": record.customerid,
            "create_date": record.create_date.isoformat(),
            "due_date": record.due_date.isoformat(),
            "due_offset_days": record.due_offset_days,
            "amount": _money(record.amount),
            "outstanding": _money(record.outstanding),
            "paid": _money(record.paid),
            "status": int(record.status),
            "v3_status": record.v3_status,
            "payment_status": record.payment_status,
            "date_paid": record.date_paid.isoformat() if record.date_paid else None,
        }
    return {
        **common,
        "invoiceid": record.invoiceid,
        "clientid": record.clientid,
        "amount": _money(record.amount),
        "date": record.date.isoformat(),
        "type": record.type,
    }


def from_json(kind: str, data: dict[str, Any]) -> Record:
    """Rebuild the record of ``kind`` from :func:`to_json`'s output."""
    updated = datetime.fromisoformat(data["updated"])
    vis = vis_state_of(data.get("vis_state", 0))
    if kind == "client":
        return Client(
            id=int(data["id"]),
            email=data["email"],
            fname=data["fname"],
            lname=data["lname"],
            organization=data["organization"],
            currency_code=data["currency_code"],
            updated=updated,
            vis_state=vis,
        )
    if kind == "invoice":
        return Invoice(
            id=int(data["id"]),
            invoice_number=data["invoice_number"],
            customerid=int(data["customerid"]),
            create_date=date.fromisoformat(data["create_date"]),
            due_date=date.fromisoformat(data["due_date"]),
            due_offset_days=int(data["due_offset_days"]),
            amount=_m(data["amount"]),
            outstanding=_m(data["outstanding"]),
            paid=_m(data["paid"]),
            status=_status(data["status"]),
            v3_status=data["v3_status"],
            payment_status=data["payment_status"],
            date_paid=_d(data.get("date_paid")),
            updated=updated,
            vis_state=vis,
        )
    if kind == "payment":
        return Payment(
            id=int(data["id"]),
            invoiceid=int(data["invoiceid"]),
            clientid=int(data["clientid"]),
            amount=_m(data["amount"]),
            date=date.fromisoformat(data["date"]),
            type=data["type"],
            updated=updated,
            vis_state=vis,
        )
    raise ValueError(f"unknown record kind {kind!r}; expected one of {', '.join(KINDS)}")


def dumps_line(record: Record) -> str:
    """One JSONL line: ``{"kind": …, "record": …}``."""
    return jsontext.dumps({"kind": kind_of(record), "record": to_json(record)})


def loads_line(line: str) -> Record:
    obj = jsontext.loads(line)
    return from_json(obj["kind"], obj["record"])
