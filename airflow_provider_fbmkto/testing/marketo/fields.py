"""Field definitions of leads and companies, value coercion by data type, timestamps and paging tokens."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from airflow_provider_fbmkto.testing.marketo.errors import InvalidData, Reason

#: Data types accepted when fields are created (lead fields, activity attributes).
DATA_TYPES = frozenset(
    {"string", "text", "integer", "float", "currency", "percent", "score", "boolean", "date", "datetime"}
    | {"email", "phone", "url", "link", "reference"}
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_INT = re.compile(r"^[+-]?\d+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_OFFSET = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")


@dataclass(frozen=True, slots=True)
class FieldDef:
    """One field of a lead or company: REST name, label, Marketo data type, writability."""

    id: int
    name: str
    display_name: str
    data_type: str
    length: int | None = None
    updateable: bool = True
    custom: bool = False

    def describe2(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "displayName": self.display_name, "dataType": self.data_type}
        if self.length is not None:
            out["length"] = self.length
        out.update({"updateable": self.updateable, "crmManaged": False})
        return out

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "displayName": self.display_name, "dataType": self.data_type}
        if self.length is not None:
            out["length"] = self.length
        out["rest"] = {"name": self.name, "readOnly": not self.updateable}
        return out


def _defs(rows: list[tuple[str, str, str, int | None, bool]], first_id: int) -> list[FieldDef]:
    return [FieldDef(first_id + i, n, d, t, ln, u) for i, (n, d, t, ln, u) in enumerate(rows)]


STANDARD_LEAD_FIELDS = _defs(
    [
        ("id", "Id", "integer", None, False),
        ("email", "Email Address", "email", 255, True),
        ("firstName", "First Name", "string", 255, True),
        ("lastName", "Last Name", "string", 255, True),
        ("company", "Company Name", "string", 255, True),
        ("title", "Job Title", "string", 255, True),
        ("phone", "Phone Number", "phone", 255, True),
        ("website", "Website", "url", 255, True),
        ("city", "City", "string", 255, True),
        ("state", "State", "string", 255, True),
        ("country", "Country", "string", 255, True),
        ("postalCode", "Postal Code", "string", 255, True),
        ("externalCompanyId", "External Company Id", "string", 100, True),
        ("leadSource", "Lead Source", "string", 255, True),
        ("unsubscribed", "Unsubscribed", "boolean", None, True),
        ("leadPartitionId", "Lead Partition Id", "integer", None, False),
        ("createdAt", "Created At", "datetime", None, False),
        ("updatedAt", "Updated At", "datetime", None, False),
    ],
    first_id=1,
)

STANDARD_COMPANY_FIELDS = _defs(
    [
        ("id", "Id", "integer", None, False),
        ("externalCompanyId", "External Company Id", "string", 100, True),
        ("company", "Company Name", "string", 255, True),
        ("website", "Website", "url", 255, True),
        ("industry", "Industry", "string", 255, True),
        ("numberOfEmployees", "Num Employees", "integer", None, True),
        ("annualRevenue", "Annual Revenue", "currency", None, True),
        ("billingStreet", "Billing Address", "text", None, True),
        ("billingCity", "Billing City", "string", 255, True),
        ("billingState", "Billing State", "string", 255, True),
        ("billingPostalCode", "Billing Postal Code", "string", 255, True),
        ("billingCountry", "Billing Country", "string", 255, True),
        ("mainPhone", "Main Phone", "phone", 255, True),
        ("createdAt", "Created At", "datetime", None, False),
        ("updatedAt", "Updated At", "datetime", None, False),
    ],
    first_id=1,
)

#: Custom company fields present by default (the default sync fields). Real Marketo lets an admin create
#: company fields only in the UI; ``MarketoEmulator(company_fields={})`` gives a bare instance.
DEFAULT_COMPANY_CUSTOM_FIELDS: dict[str, str] = {
    "fbPaymentTerms": "string",
    "fbOutstandingBalance": "currency",
    "fbInvoiceCount": "integer",
    "fbPaymentStatus": "string",
    "fbLastPaymentDate": "date",
    "fbAverageDaysToPay": "float",
}


def iso(at: datetime) -> str:
    """Marketo's timestamp form: UTC, whole seconds, ``Z``."""
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_datetime(text: Any, *, require_offset: bool = True) -> datetime:
    """Parse ISO 8601; raise ``ValueError`` unless it is a string with a UTC offset (or ``Z``)."""
    if not isinstance(text, str) or not text:
        raise ValueError(text)
    if require_offset and not _OFFSET.search(text):
        raise ValueError(text)
    value = text[:-1] + "+00:00" if text.endswith("Z") else text
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        if require_offset:
            raise ValueError(text)
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def coerce(value: Any, data_type: str) -> Any:
    """Check ``value`` against a Marketo data type and return it as stored; ``ValueError`` when it does not fit."""
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        raise ValueError(value)
    if data_type == "integer" or data_type == "score":
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, int):
            return value
        if isinstance(value, str) and _INT.match(value.strip()):
            return int(value)
        raise ValueError(value)
    if data_type in ("float", "currency", "percent"):
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, (int, float)):
            return float(value)
        return float(str(value).strip())
    if data_type == "boolean":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "1"):
            return True
        if str(value).lower() in ("false", "0"):
            return False
        raise ValueError(value)
    if data_type == "date":
        if not isinstance(value, str) or not _DATE.match(value):
            raise ValueError(value)
        date.fromisoformat(value)
        return value
    if data_type == "datetime":
        parse_datetime(value, require_offset=False)
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if data_type == "email" and text and not _EMAIL.match(text):
        raise ValueError(value)
    return text


def invalid_value(value: Any, data_type: str) -> Reason:
    return Reason("1001", f"Invalid value '{value}'. Required of type '{data_type}'")


def encode_token(kind: str, *parts: object) -> str:
    """An opaque paging token (base32, like Marketo's) that carries a cursor."""
    raw = "|".join([kind, *map(str, parts)]).encode()
    return base64.b32encode(raw).decode().rstrip("=")


def decode_token(token: str, kind: str) -> list[str]:
    """The cursor parts of a token of ``kind``; 1003 for anything else."""
    try:
        raw = base64.b32decode(token + "=" * (-len(token) % 8)).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidData(f"Invalid nextPageToken '{token}'") from None
    head, *parts = raw.split("|")
    if head != kind:
        raise InvalidData(f"Invalid nextPageToken '{token}'")
    return parts
