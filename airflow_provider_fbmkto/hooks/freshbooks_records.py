"""FreshBooks JSON objects -> the domain's frozen records (:mod:`airflow_provider_fbmkto.sync.records`).

Money becomes ``Decimal`` (FreshBooks sends strings; never float), ``updated`` becomes aware UTC from
FreshBooks' naive US/Eastern wall time (through :mod:`airflow_provider_fbmkto.sync.window`, DST-correct),
and dates stay plain dates. A malformed object raises :class:`ApiError` naming the object and field,
rather than a bare ``KeyError`` from deep inside a sync.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from airflow_provider_fbmkto.exceptions import ApiError
from airflow_provider_fbmkto.sync.records import Client, Invoice, InvoiceStatus, Money, Payment, VisState
from airflow_provider_fbmkto.sync.window import parse_fb_timestamp

T = TypeVar("T")


def _field(kind: str, obj: Mapping[str, Any], name: str, convert: Callable[[Any], T], *alts: str) -> T:
    for key in (name, *alts):
        value = obj.get(key)
        if value is not None and value != "":
            try:
                return convert(value)
            except (TypeError, ValueError, InvalidOperation, ArithmeticError) as exc:
                ident = obj.get("id", "?")
                raise ApiError(f"FreshBooks {kind} {ident}: field {key!r} has an unexpected value ({exc})") from None
    ident = obj.get("id", "?")
    raise ApiError(f"FreshBooks {kind} {ident}: field {name!r} is missing")


def _opt(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    return "" if value is None else str(value)


def _date(value: Any) -> date:
    return date.fromisoformat(str(value)[:10])


def _opt_date(value: Any) -> date | None:
    if value in (None, "", "0000-00-00", "0000-00-00 00:00:00"):
        return None
    return _date(value)


def _timestamp(value: Any) -> datetime:
    return parse_fb_timestamp(str(value))


def _money(value: Any, currency: str) -> Money:
    if isinstance(value, Mapping):
        return Money(Decimal(str(value.get("amount") or "0")), str(value.get("code") or currency))
    return Money(Decimal(str(value)), currency)


def _vis(kind: str, obj: Mapping[str, Any]) -> VisState:
    if obj.get("vis_state") in (None, ""):
        return VisState.ACTIVE
    return _field(kind, obj, "vis_state", lambda v: VisState(int(v)))


def parse_client(obj: Mapping[str, Any]) -> Client:
    return Client(
        id=_field("client", obj, "id", int, "userid"),
        email=_opt(obj, "email"),
        fname=_opt(obj, "fname"),
        lname=_opt(obj, "lname"),
        organization=_opt(obj, "organization"),
        currency_code=_opt(obj, "currency_code") or "USD",
        updated=_field("client", obj, "updated", _timestamp),
        vis_state=_vis("client", obj),
    )


def parse_invoice(obj: Mapping[str, Any]) -> Invoice:
    currency = _opt(obj, "currency_code") or "USD"
    create_date = _field("invoice", obj, "create_date", _date)
    due_offset = int(obj.get("due_offset_days") or 0)
    due_date = _opt_date(obj.get("due_date")) or date.fromordinal(create_date.toordinal() + due_offset)
    zero = {"amount": "0", "code": currency}
    return Invoice(
        id=_field("invoice", obj, "id", int, "invoiceid"),
        invoice_number=_opt(obj, "invoice_number"),
        customerid=_field("invoice", obj, "customerid", int),
        create_date=create_date,
        due_date=due_date,
        due_offset_days=due_offset,
        amount=_field("invoice", obj, "amount", lambda v: _money(v, currency)),
        outstanding=_money(obj.get("outstanding") or zero, currency),
        paid=_money(obj.get("paid") or zero, currency),
        status=_field("invoice", obj, "status", lambda v: InvoiceStatus(int(v))),
        v3_status=_opt(obj, "v3_status"),
        payment_status=_opt(obj, "payment_status"),
        date_paid=_opt_date(obj.get("date_paid")),
        updated=_field("invoice", obj, "updated", _timestamp),
        vis_state=_vis("invoice", obj),
    )


def parse_payment(obj: Mapping[str, Any]) -> Payment:
    amount = obj.get("amount")
    currency = amount.get("code") if isinstance(amount, Mapping) else None
    return Payment(
        id=_field("payment", obj, "id", int, "logid"),
        invoiceid=_field("payment", obj, "invoiceid", int),
        clientid=_field("payment", obj, "clientid", int),
        amount=_field("payment", obj, "amount", lambda v: _money(v, str(currency or "USD"))),
        date=_field("payment", obj, "date", _date),
        type=_opt(obj, "type"),
        updated=_field("payment", obj, "updated", _timestamp),
        vis_state=_vis("payment", obj),
    )
