"""Idempotency keys of the sync ledger, and the payload hash that goes with them.

Every planned write has a key that names *what* it is, independent of the run that planned it::

    invoice_sent:<account>:<invoice id>
    payment_received:<account>:<payment id>
    invoice_overdue:<account>:<invoice id>:<due date YYYY-MM-DD>
    company:<account>:<company key>
    lead:<account>:<e-mail, lower-cased>
    list:<account>:<e-mail, lower-cased>          (static-list membership of that lead)

Two families behave differently in the ledger:

* **activity keys** (:data:`WRITE_ONCE_KINDS`) are *write-once*: Marketo has no idempotency key and sending an
  activity twice makes two activities, so once such a key is written it must never be sent again — even if a
  later plan for the same key hashes differently (e.g. an invoice first seen by polling, later by its
  ``invoice.sendByEmail`` webhook).
* **state keys** (company, lead, list) are *upserts*: they are sent again whenever their payload hash changes.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import NamedTuple

from airflow_provider_fbmkto.sync import jsontext

__all__ = [
    "WRITE_ONCE_KINDS",
    "KeyKind",
    "ParsedKey",
    "canonical_json",
    "company_ledger_key",
    "invoice_overdue_key",
    "invoice_overdue_prefix",
    "invoice_sent_key",
    "is_write_once",
    "lead_key",
    "list_key",
    "parse_key",
    "payload_hash",
    "payment_received_key",
]


class KeyKind(str, enum.Enum):
    """The first segment of a ledger key."""

    INVOICE_SENT = "invoice_sent"
    PAYMENT_RECEIVED = "payment_received"
    INVOICE_OVERDUE = "invoice_overdue"
    COMPANY = "company"
    LEAD = "lead"
    LIST = "list"


WRITE_ONCE_KINDS = frozenset({KeyKind.INVOICE_SENT, KeyKind.PAYMENT_RECEIVED, KeyKind.INVOICE_OVERDUE})


def invoice_sent_key(account: str, invoice_id: int) -> str:
    return f"invoice_sent:{account}:{invoice_id}"


def payment_received_key(account: str, payment_id: int) -> str:
    return f"payment_received:{account}:{payment_id}"


def invoice_overdue_key(account: str, invoice_id: int, due_date: date) -> str:
    return f"invoice_overdue:{account}:{invoice_id}:{due_date.isoformat()}"


def invoice_overdue_prefix(account: str, invoice_id: int) -> str:
    """The start shared by the Invoice Overdue keys of one invoice, whatever its due date."""
    return f"invoice_overdue:{account}:{invoice_id}:"


def company_ledger_key(account: str, company_key: str) -> str:
    """Ledger key of a company write; ``company_key`` is the part after ``fbmkto:`` in ``externalCompanyId``."""
    return f"company:{account}:{company_key}"


def lead_key(account: str, email: str) -> str:
    return f"lead:{account}:{email.strip().lower()}"


def list_key(account: str, email: str) -> str:
    return f"list:{account}:{email.strip().lower()}"


class ParsedKey(NamedTuple):
    kind: KeyKind
    account: str
    rest: str
    """Everything after the account: id, ``<invoice id>:<due date>``, company key or e-mail."""


def parse_key(key: str) -> ParsedKey:
    """Split a ledger key into kind, account and the rest.

    :raises ValueError: for a string that is not one of our keys.
    """
    parts = key.split(":", 2)
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise ValueError(f"not a ledger key: {key!r}")
    try:
        kind = KeyKind(parts[0])
    except ValueError:
        raise ValueError(f"not a ledger key: {key!r} (unknown kind {parts[0]!r})") from None
    return ParsedKey(kind, parts[1], parts[2])


def is_write_once(key: str) -> bool:
    """Whether a written ``key`` must never be sent again (activity keys; see the module notes)."""
    return parse_key(key).kind in WRITE_ONCE_KINDS


_PLAIN = frozenset({str, int, bool, type(None)})


def _canonical(value: object) -> object:
    kind = type(value)
    if kind in _PLAIN:  # the common cases first, by exact type (same answers as the checks below)
        return value
    if kind is dict:
        out: dict[str, object] = {}
        for k, v in value.items():  # type: ignore[attr-defined]
            if type(k) is not str and not isinstance(k, str):
                raise TypeError(f"mapping keys must be strings to hash, got {k!r}")
            out[k] = _canonical(v)
        return out
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        raise TypeError("floats are not hashed (inexact); use Decimal")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError(f"non-finite Decimal {value!r} cannot be hashed")
        # "10", "10.0" and "10.00" are the same amount and hash the same.
        return format(value.normalize(), "f") if value else "0"
    if isinstance(value, enum.Enum):
        return _canonical(value.value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError(f"naive datetime {value.isoformat()!r} cannot be hashed")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"mapping keys must be strings to hash, got {k!r}")
            out[k] = _canonical(v)
        return out
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_canonical(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    raise TypeError(f"cannot hash a value of type {type(value).__name__}")


def canonical_json(value: object) -> str:
    """Canonical JSON of ``value``: sorted keys, no spaces, Decimal as a normalised string, dates in ISO 8601.

    Supports None, bool, int, str, Decimal, enums, aware datetimes, dates, dataclasses, string-keyed
    mappings, lists/tuples (order kept) and sets (sorted). Floats and naive datetimes are refused.
    """
    return jsontext.canonical(_canonical(value))


def payload_hash(value: object) -> str:
    """Stable SHA-256 (hex) of :func:`canonical_json` of ``value``; equal payloads hash equal across runs."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()
