"""Ledger keys (pinned formats) and the canonical payload hash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_fbmkto.sync.health import PaymentStatus
from airflow_provider_fbmkto.sync.keys import (
    KeyKind,
    canonical_json,
    company_ledger_key,
    invoice_overdue_key,
    invoice_sent_key,
    is_write_once,
    lead_key,
    list_key,
    parse_key,
    payload_hash,
    payment_received_key,
)


def test_key_formats_are_the_designed_ones() -> None:
    assert invoice_sent_key("acme", 101) == "invoice_sent:acme:101"
    assert payment_received_key("acme", 501) == "payment_received:acme:501"
    assert invoice_overdue_key("acme", 5, date(2025, 3, 9)) == "invoice_overdue:acme:5:2025-03-09"
    assert company_ledger_key("acme", "bigco-holdings") == "company:acme:bigco-holdings"
    assert lead_key("acme", " Ann@BigCo.IO ") == "lead:acme:ann@bigco.io"
    assert list_key("acme", "Ann@BigCo.IO") == "list:acme:ann@bigco.io"


@pytest.mark.parametrize(
    ("key", "kind", "account", "rest", "write_once"),
    [
        ("invoice_sent:acme:101", KeyKind.INVOICE_SENT, "acme", "101", True),
        ("invoice_overdue:acme:5:2025-03-09", KeyKind.INVOICE_OVERDUE, "acme", "5:2025-03-09", True),
        ("payment_received:acme:1", KeyKind.PAYMENT_RECEIVED, "acme", "1", True),
        ("lead:acme:odd:name@x.io", KeyKind.LEAD, "acme", "odd:name@x.io", False),
        ("company:b_2:bigco.io", KeyKind.COMPANY, "b_2", "bigco.io", False),
    ],
)
def test_parse_key(key: str, kind: KeyKind, account: str, rest: str, write_once: bool) -> None:
    assert parse_key(key) == (kind, account, rest)
    assert is_write_once(key) is write_once


@pytest.mark.parametrize("key", ["", "lead", "lead:acme", "lead::x", "nope:acme:1"])
def test_parse_key_rejects(key: str) -> None:
    with pytest.raises(ValueError, match="not a ledger key"):
        parse_key(key)


def test_payload_hash_is_sha256_of_canonical_json() -> None:
    value = {"b": [1, Decimal("10.00")], "a": "é", "c": None, "d": date(2025, 3, 9), "e": PaymentStatus.PAID}
    text = '{"a":"é","b":[1,"10"],"c":null,"d":"2025-03-09","e":"paid"}'
    assert canonical_json(value) == text
    assert payload_hash(value) == hashlib.sha256(text.encode()).hexdigest()


def test_canonical_json_details() -> None:
    assert canonical_json({"x": Decimal("0.00"), "y": Decimal("1E+2"), "z": Decimal("-0.50")}) == (
        '{"x":"0","y":"100","z":"-0.5"}'
    )
    moment = datetime(2025, 3, 10, 4, tzinfo=timezone.utc)
    assert canonical_json([moment, frozenset({"b", "a"})]) == '["2025-03-10T04:00:00+00:00",["a","b"]]'

    @dataclass(frozen=True)
    class P:
        n: int
        s: str

    assert canonical_json(P(1, "x")) == '{"n":1,"s":"x"}'


@pytest.mark.parametrize(
    "bad", [1.5, datetime(2025, 1, 1), Decimal("NaN"), {1: "int key"}, object()], ids=["float", "naive", "nan",
                                                                                      "int-key", "object"]
)  # fmt: skip
def test_canonical_json_refuses_ambiguous_values(bad: object) -> None:
    with pytest.raises(TypeError):
        payload_hash({"v": bad})


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=10)
    | st.decimals(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=15,
)


@given(st.dictionaries(st.text(max_size=5), json_like, max_size=6))
def test_hash_ignores_key_order(mapping: dict[str, object]) -> None:
    reversed_mapping = dict(reversed(list(mapping.items())))
    assert payload_hash(mapping) == payload_hash(reversed_mapping)
