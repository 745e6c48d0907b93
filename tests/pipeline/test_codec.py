"""JSON round trip of the typed FreshBooks records (staging files and the state DB's mirror use it)."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_fbmkto.sync.codec import dumps_line, from_json, kind_of, loads_line, to_json
from airflow_provider_fbmkto.sync.records import Client, Invoice, InvoiceStatus, Money, Payment, VisState

UPDATED = datetime(2025, 3, 4, 15, 30, 5, tzinfo=timezone.utc)


def _client(**kw: object) -> Client:
    base: dict[str, object] = {
        "id": 42,
        "email": "cfo@bigco.io",
        "fname": "Zoë",
        "lname": "O'Brien",
        "organization": "BigCo Holdings",
        "currency_code": "USD",
        "updated": UPDATED,
    }
    base.update(kw)
    return Client(**base)  # type: ignore[arg-type]


def _invoice(**kw: object) -> Invoice:
    base: dict[str, object] = {
        "id": 9001,
        "invoice_number": "0000123",
        "customerid": 42,
        "create_date": date(2025, 3, 1),
        "due_date": date(2025, 3, 31),
        "due_offset_days": 30,
        "amount": Money(Decimal("1234567890123.456789"), "USD"),
        "outstanding": Money(Decimal("10.50"), "USD"),
        "paid": Money(Decimal("0.00"), "USD"),
        "status": InvoiceStatus.PARTIAL,
        "v3_status": "partial",
        "payment_status": "partial",
        "date_paid": None,
        "updated": UPDATED,
    }
    base.update(kw)
    return Invoice(**base)  # type: ignore[arg-type]


def _payment(**kw: object) -> Payment:
    base: dict[str, object] = {
        "id": 77,
        "invoiceid": 9001,
        "clientid": 42,
        "amount": Money(Decimal("0.01"), "CAD"),
        "date": date(2025, 3, 15),
        "type": "Credit Card",
        "updated": UPDATED,
    }
    base.update(kw)
    return Payment(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "record",
    [
        _client(),
        _client(vis_state=VisState.DELETED, email=""),
        _invoice(),
        _invoice(vis_state=VisState.ARCHIVED, date_paid=date(2025, 3, 20), status=InvoiceStatus.PAID),
        _payment(),
        _payment(vis_state=VisState.DELETED),
    ],
    ids=["client", "client-deleted", "invoice-unpaid", "invoice-archived-paid", "payment", "payment-deleted"],
)
def test_round_trip_through_json_text(record: Client | Invoice | Payment) -> None:
    # Through real JSON text, as staging files and the mirror's JSON column store it.
    data = json.loads(json.dumps(to_json(record)))
    assert from_json(kind_of(record), data) == record
    assert loads_line(dumps_line(record)) == record


def test_decimal_precision_is_kept_digit_for_digit() -> None:
    back = from_json("invoice", json.loads(json.dumps(to_json(_invoice()))))
    assert isinstance(back, Invoice)
    # A float would have turned this into 1234567890123.4568; trailing zeros are kept too.
    assert str(back.amount.amount) == "1234567890123.456789"
    assert str(back.outstanding.amount) == "10.50"
    assert str(back.paid.amount) == "0.00"
    assert back.amount.currency == "USD"


def test_money_and_dates_are_json_strings_not_floats() -> None:
    data = to_json(_payment())
    assert data["amount"] == {"amount": "0.01", "code": "CAD"}
    assert data["date"] == "2025-03-15"
    assert datetime.fromisoformat(data["updated"]) == UPDATED


def test_none_date_paid_and_vis_state_survive() -> None:
    data = to_json(_invoice(vis_state=VisState.DELETED))
    assert data["date_paid"] is None
    assert data["vis_state"] == 1
    back = from_json("invoice", data)
    assert isinstance(back, Invoice)
    assert back.date_paid is None
    assert back.vis_state is VisState.DELETED
    assert back.is_deleted


def test_missing_vis_state_means_active() -> None:
    data = to_json(_client())
    del data["vis_state"]
    back = from_json("client", data)
    assert back.vis_state is VisState.ACTIVE


def test_unknown_kind_names_the_known_kinds() -> None:
    with pytest.raises(ValueError, match="estimate") as err:
        from_json("estimate", to_json(_client()))
    for kind in ("client", "invoice", "payment"):
        assert kind in str(err.value)


# -- property: every record survives the round trip --------------------------------------------------

_ids = st.integers(min_value=1, max_value=2**31 - 1)
_text = st.text(max_size=30)
_moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc))
_dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1))
_money = st.builds(
    Money,
    st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), allow_nan=False, allow_infinity=False, places=6),
    st.sampled_from(["USD", "CAD", "EUR", "GBP"]),
)
_vis = st.sampled_from(list(VisState))

_clients = st.builds(
    Client,
    id=_ids,
    email=_text,
    fname=_text,
    lname=_text,
    organization=_text,
    currency_code=_text,
    updated=_moments,
    vis_state=_vis,
)
_invoices = st.builds(
    Invoice,
    id=_ids,
    invoice_number=_text,
    customerid=_ids,
    create_date=_dates,
    due_date=_dates,
    due_offset_days=st.integers(min_value=0, max_value=365),
    amount=_money,
    outstanding=_money,
    paid=_money,
    status=st.sampled_from(list(InvoiceStatus)),
    v3_status=_text,
    payment_status=_text,
    date_paid=st.none() | _dates,
    updated=_moments,
    vis_state=_vis,
)
_payments = st.builds(
    Payment,
    id=_ids,
    invoiceid=_ids,
    clientid=_ids,
    amount=_money,
    date=_dates,
    type=_text,
    updated=_moments,
    vis_state=_vis,
)


@given(st.one_of(_clients, _invoices, _payments))
def test_property_round_trip(record: Client | Invoice | Payment) -> None:
    line = dumps_line(record)
    assert "\n" not in line  # one JSONL line per record
    back = loads_line(line)
    assert back == record
    assert type(back) is type(record)
    if isinstance(record, (Invoice, Payment)):
        assert isinstance(back, (Invoice, Payment))
        assert str(back.amount.amount) == str(record.amount.amount)
