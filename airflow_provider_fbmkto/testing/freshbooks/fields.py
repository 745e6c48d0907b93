"""Validation of the fields users give ``add_*``/``update`` (Python or control API): defaults, types, rules.

Every problem raises ``FieldError`` naming the field, so the control API answers a clear 4xx, never a 500.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from .errors import FieldError
from .timeutil import eastern_date, parse_eastern, require_aware

if TYPE_CHECKING:
    from .models import ClientRecord, FreshBooksModel, InvoiceRecord, PaymentRecord

KINDS = ("client", "invoice", "payment")
_ALIASES = {"clients": "client", "invoices": "invoice", "payments": "payment"}
STATUS_NAMES = {"disputed": 0, "draft": 1, "sent": 2, "viewed": 3, "retry": 6, "failed": 7}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
MIN_DAY, MAX_DAY = date(1990, 1, 1), date(2099, 12, 31)  # keeps every derived date/timestamp renderable
MAX_DUE_OFFSET = 3650
MAX_AMOUNT = Decimal("1000000000000")


def normalize_kind(kind: str) -> str:
    kind = _ALIASES.get(kind, kind)
    if kind not in KINDS:
        raise FieldError("kind", f"unknown record kind {kind!r}; use one of {', '.join(KINDS)}", status=404)
    return kind


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise FieldError(name, f"must be an integer, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise FieldError(name, f"must be an integer, got {value!r}") from None
    if not -(2**53) < number < 2**53:
        raise FieldError(name, f"out of range, got {value!r}")
    return number


def _str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError(name, f"must be a string, got {value!r}")
    return value


def _money(name: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise FieldError(name, f"must be a decimal amount such as '123.45', got {value!r}")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise FieldError(name, f"must be a decimal amount such as '123.45', got {value!r}") from None
    if not amount.is_finite() or amount <= 0 or amount >= MAX_AMOUNT:
        raise FieldError(name, f"must be a positive amount below {MAX_AMOUNT}, got {value!r}")
    if amount != amount.quantize(Decimal("0.01")):
        raise FieldError(name, f"must have at most 2 decimal places, got {value!r}")
    return amount.quantize(Decimal("0.01"))


def _in_range(name: str, day: date) -> None:
    if not MIN_DAY <= day <= MAX_DAY:
        raise FieldError(name, f"must lie between {MIN_DAY} and {MAX_DAY}, got {day}")


def _date(name: str, value: Any) -> date:
    if isinstance(value, datetime):
        raise FieldError(name, "must be a date (YYYY-MM-DD), not a datetime")
    if isinstance(value, date):
        _in_range(name, value)
        return value
    if isinstance(value, str):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            pass
        else:
            _in_range(name, day)
            return day
    raise FieldError(name, f"must be a date YYYY-MM-DD, got {value!r}")


def _instant(name: str, value: Any) -> datetime:
    """An aware datetime, or FreshBooks' naive US/Eastern string 'YYYY-MM-DD HH:MM:SS'."""
    if isinstance(value, datetime):
        try:
            moment = require_aware(value, name)
        except (ValueError, OverflowError) as exc:
            raise FieldError(name, str(exc)) from None
        _in_range(name, moment.date())
        return moment
    if isinstance(value, str):
        try:
            moment = parse_eastern(value)
        except (ValueError, OverflowError) as exc:
            raise FieldError(name, f"{exc} (expected US/Eastern 'YYYY-MM-DD HH:MM:SS' or an aware datetime)") from None
        _in_range(name, moment.date())
        return moment
    raise FieldError(name, f"must be an aware datetime or 'YYYY-MM-DD HH:MM:SS' (US/Eastern), got {value!r}")


def _vis_state(name: str, value: Any) -> int:
    state = _int(name, value)
    if state not in (0, 1, 2):
        raise FieldError(name, f"must be 0 (active), 1 (deleted) or 2 (archived), got {value!r}")
    return state


def _currency(name: str, value: Any) -> str:
    code = _str(name, value)
    if not _CURRENCY.match(code):
        raise FieldError(name, f"must be a 3-letter ISO currency code such as 'USD', got {value!r}")
    return code


def _email(name: str, value: Any) -> str:
    text = _str(name, value)
    if not _EMAIL.match(text):
        raise FieldError(name, f"must be an e-mail address, got {value!r}")
    return text


def _status(name: str, value: Any) -> int:
    if isinstance(value, str) and value in STATUS_NAMES:
        return STATUS_NAMES[value]
    code = _int(name, value)
    if code not in STATUS_NAMES.values():
        raise FieldError(
            name, f"must be one of {sorted(STATUS_NAMES)} or their codes (paid/partial come from payments)"
        )
    return code


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise FieldError(name, f"must be true or false, got {value!r}")
    return value


Coercer = Callable[[str, Any], Any]
# user field name -> (record attribute, coercer)
SPECS: dict[str, dict[str, tuple[str, Coercer]]] = {
    "client": {
        "id": ("id", _int),
        "email": ("email", _email),
        "fname": ("fname", _str),
        "lname": ("lname", _str),
        "organization": ("organization", _str),
        "currency_code": ("currency_code", _currency),
        "vis_state": ("vis_state", _vis_state),
        "updated": ("updated", _instant),
        "created_at": ("created", _instant),
    },
    "invoice": {
        "id": ("id", _int),
        "invoice_number": ("invoice_number", _str),
        "customerid": ("customerid", _int),
        "create_date": ("create_date", _date),
        "due_offset_days": ("due_offset_days", _int),
        "due_date": ("due_date", _date),
        "amount": ("amount", _money),
        "currency_code": ("currency_code", _currency),
        "status": ("base_status", _status),
        "auto_paid": ("auto_paid", _bool),
        "vis_state": ("vis_state", _vis_state),
        "updated": ("updated", _instant),
        "created_at": ("created", _instant),
    },
    "payment": {
        "id": ("id", _int),
        "invoiceid": ("invoiceid", _int),
        "clientid": ("clientid", _int),
        "amount": ("amount", _money),
        "date": ("date", _date),
        "type": ("type", _str),
        "vis_state": ("vis_state", _vis_state),
        "updated": ("updated", _instant),
        "created_at": ("created", _instant),
    },
}


def coerce(kind: str, fields: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """Check names and types; returns record attributes. Unknown fields are errors (never silently dropped)."""
    spec = SPECS[kind]
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in spec:
            raise FieldError(name, f"unknown {kind} field; known fields: {', '.join(sorted(spec))}")
        if name == "id" and not creating:
            raise FieldError("id", "cannot be changed")
        attr, fn = spec[name]
        out[attr] = fn(name, value)
        if name == "id" and out[attr] < 1:
            raise FieldError("id", f"must be >= 1, got {value!r}")
    return out


def _client_of(model: FreshBooksModel, customerid: int) -> ClientRecord:
    client = model.clients.get(customerid)
    if client is None:
        raise FieldError("customerid", f"no client with id {customerid}", status=409)
    return client


def _due_offset(values: dict[str, Any], create_date: date) -> int | None:
    if "due_date" in values:
        due = values.pop("due_date")
        if "due_offset_days" in values:
            raise FieldError("due_date", "give due_date or due_offset_days, not both")
        if due < create_date:
            raise FieldError("due_date", f"{due} is before create_date {create_date}")
        return int((due - create_date).days)
    if "due_offset_days" in values:
        if not 0 <= values["due_offset_days"] <= MAX_DUE_OFFSET:
            raise FieldError("due_offset_days", f"must be between 0 and {MAX_DUE_OFFSET}")
        return int(values["due_offset_days"])
    return None


def parse_client_fields(model: FreshBooksModel, fields: dict[str, Any], now: datetime, existing: Any = None) -> Any:
    from .models import ClientRecord

    values = coerce("client", fields, creating=existing is None)
    if existing is not None:
        return values
    rec_id = values.pop("id", None) or model.next_id("client")
    if rec_id in model.clients:
        raise FieldError("id", f"a client with id {rec_id} exists", status=409)
    fname = values.pop("fname", "Pat")
    lname = values.pop("lname", f"Client{rec_id}")
    created = values.pop("created", now)
    updated = values.pop("updated", max(created, now))
    return ClientRecord(
        id=rec_id,
        email=values.pop("email", f"{fname}.{lname}@example.com".lower()),
        fname=fname,
        lname=lname,
        organization=values.pop("organization", ""),
        currency_code=values.pop("currency_code", "USD"),
        created=created,
        updated=updated,
        updated_day=eastern_date(updated),
        **values,
    )


def parse_invoice_fields(
    model: FreshBooksModel, fields: dict[str, Any], now: datetime, existing: InvoiceRecord | None = None
) -> Any:
    from .models import InvoiceRecord

    values = coerce("invoice", fields, creating=existing is None)
    if existing is not None:
        if "customerid" in values:
            _client_of(model, values["customerid"])
        create_date = values.get("create_date", existing.create_date)
        offset = _due_offset(values, create_date)
        if offset is not None:
            values["due_offset_days"] = offset
        if "amount" in values and values["amount"] < existing.paid:
            raise FieldError("amount", f"{values['amount']} is below the {existing.paid} already paid")
        return values
    if "customerid" not in values:
        raise FieldError("customerid", "required: the id of the invoice's client")
    client = _client_of(model, values.pop("customerid"))
    rec_id = values.pop("id", None) or model.next_id("invoice")
    if rec_id in model.invoices:
        raise FieldError("id", f"an invoice with id {rec_id} exists", status=409)
    create_date = values.pop("create_date", eastern_date(now))
    offset = _due_offset(values, create_date)
    values.pop("due_offset_days", None)
    created = values.pop("created", now)
    updated = values.pop("updated", max(created, now))
    return InvoiceRecord(
        id=rec_id,
        invoice_number=values.pop("invoice_number", None) or model.next_invoice_number(),
        customerid=client.id,
        create_date=create_date,
        due_offset_days=30 if offset is None else offset,
        amount=values.pop("amount", Decimal("100.00")),
        currency_code=values.pop("currency_code", client.currency_code),
        created=created,
        updated=updated,
        updated_day=eastern_date(updated),
        base_status=values.pop("base_status", 2),
        **values,
    )


def parse_payment_fields(
    model: FreshBooksModel, fields: dict[str, Any], now: datetime, existing: PaymentRecord | None = None
) -> Any:
    from .models import PaymentRecord

    values = coerce("payment", fields, creating=existing is None)
    if existing is not None:
        for frozen in ("invoiceid", "clientid"):
            if frozen in values and values[frozen] != getattr(existing, frozen):
                raise FieldError(frozen, "cannot be changed; delete the payment and add another")
        paid_inv = model.invoices[existing.invoiceid]
        will_count = values.get("vis_state", existing.vis_state) != 1
        counted = existing.amount if existing.vis_state != 1 else Decimal("0")
        amount = values.get("amount", existing.amount)
        if will_count and amount > paid_inv.outstanding + counted:
            raise FieldError("amount", f"{amount} exceeds the invoice's outstanding {paid_inv.outstanding + counted}")
        return values
    if "invoiceid" not in values:
        raise FieldError("invoiceid", "required: the id of the invoice being paid")
    inv = model.invoices.get(values.pop("invoiceid"))
    if inv is None:
        raise FieldError("invoiceid", f"no invoice with id {fields['invoiceid']}", status=409)
    if inv.vis_state == 1:
        raise FieldError("invoiceid", f"invoice {inv.id} is deleted")
    if values.pop("clientid", inv.customerid) != inv.customerid:
        raise FieldError("clientid", f"invoice {inv.id} belongs to client {inv.customerid}")
    if inv.outstanding <= 0:
        raise FieldError("invoiceid", f"invoice {inv.id} is already fully paid")
    amount = values.pop("amount", inv.outstanding)
    if amount > inv.outstanding:
        raise FieldError("amount", f"{amount} exceeds the invoice's outstanding {inv.outstanding} (no overpayments)")
    rec_id = values.pop("id", None) or model.next_id("payment")
    if rec_id in model.payments:
        raise FieldError("id", f"a payment with id {rec_id} exists", status=409)
    created = values.pop("created", now)
    updated = values.pop("updated", max(created, now))
    return PaymentRecord(
        id=rec_id,
        invoiceid=inv.id,
        clientid=inv.customerid,
        amount=amount,
        date=values.pop("date", eastern_date(now)),
        type=values.pop("type", "Check"),
        created=created,
        updated=updated,
        updated_day=eastern_date(updated),
        **values,
    )


__all__ = ["KINDS", "coerce", "normalize_kind"]
