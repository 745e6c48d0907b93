"""The Marketo schema this provider writes into: custom activity types, lead fields, company fields.

One place for the names (DESIGN "Names users will see"): the pipeline maps payloads onto these, and
``fbmkto setup-marketo`` creates what the API can create (:func:`ensure_schema`). Company fields cannot be
created through the API; they are listed for an admin to add in Marketo's UI.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_fbmkto.hooks.marketo import MarketoHook


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A lead/company field or an activity attribute: API name, label, Marketo data type."""

    name: str
    display_name: str
    data_type: str
    description: str = ""

    def as_attribute(self, *, primary: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"apiName": self.name, "name": self.display_name, "dataType": self.data_type}
        if self.description:
            out["description"] = self.description
        if primary:
            out["isPrimary"] = True
        return out

    def as_lead_field(self) -> dict[str, Any]:
        out = {"name": self.name, "displayName": self.display_name, "dataType": self.data_type}
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True, slots=True)
class ActivityTypeSpec:
    """A custom activity type: its primary attribute is what Marketo shows as the activity's value."""

    api_name: str
    name: str
    trigger_name: str
    filter_name: str
    description: str
    primary: FieldSpec
    attributes: tuple[FieldSpec, ...]


ACCOUNT_ID = FieldSpec("fbAccountId", "FreshBooks Account", "string", "FreshBooks account id")
AMOUNT = FieldSpec("amount", "Amount", "float", "Amount in the invoice's currency")
CURRENCY = FieldSpec("currency", "Currency", "string", "ISO 4217 currency code")
DUE_DATE = FieldSpec("dueDate", "Due Date", "date")
INVOICE_NUMBER = FieldSpec("invoiceNumber", "Invoice Number", "string", "FreshBooks invoice number")

INVOICE_SENT = ActivityTypeSpec(
    api_name="fbInvoiceSent",
    name="Invoice Sent",
    trigger_name="FreshBooks Invoice Is Sent",
    filter_name="Was Sent FreshBooks Invoice",
    description="A FreshBooks invoice was sent to the lead's client",
    primary=INVOICE_NUMBER,
    attributes=(ACCOUNT_ID, AMOUNT, CURRENCY, DUE_DATE),
)
PAYMENT_RECEIVED = ActivityTypeSpec(
    api_name="fbPaymentReceived",
    name="Payment Received",
    trigger_name="FreshBooks Payment Is Received",
    filter_name="Made FreshBooks Payment",
    description="FreshBooks recorded a payment from the lead's client",
    primary=FieldSpec("paymentId", "Payment ID", "string", "FreshBooks payment id"),
    attributes=(ACCOUNT_ID, AMOUNT, CURRENCY, INVOICE_NUMBER),
)
INVOICE_OVERDUE = ActivityTypeSpec(
    api_name="fbInvoiceOverdue",
    name="Invoice Overdue",
    trigger_name="FreshBooks Invoice Becomes Overdue",
    filter_name="Had FreshBooks Invoice Overdue",
    description="A FreshBooks invoice of the lead's client passed its due date unpaid",
    primary=INVOICE_NUMBER,
    attributes=(ACCOUNT_ID, AMOUNT, CURRENCY, DUE_DATE, FieldSpec("daysOverdue", "Days Overdue", "integer")),
)
ACTIVITY_TYPES: tuple[ActivityTypeSpec, ...] = (INVOICE_SENT, PAYMENT_RECEIVED, INVOICE_OVERDUE)

LEAD_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("fbPaymentStatus", "FreshBooks Payment Status", "string", "paid / current / partial / overdue / none"),
    FieldSpec("fbOutstandingBalance", "FreshBooks Outstanding Balance", "currency"),
    FieldSpec("fbLastPaymentDate", "FreshBooks Last Payment Date", "date"),
)

COMPANY_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("fbPaymentTerms", "FreshBooks Payment Terms", "string", 'e.g. "Net 30"'),
    FieldSpec("fbOutstandingBalance", "FreshBooks Outstanding Balance", "currency"),
    FieldSpec("fbInvoiceCount", "FreshBooks Invoice Count", "integer"),
    FieldSpec("fbPaymentStatus", "FreshBooks Payment Status", "string"),
    FieldSpec("fbLastPaymentDate", "FreshBooks Last Payment Date", "date"),
    FieldSpec("fbAverageDaysToPay", "FreshBooks Average Days To Pay", "float"),
)


@dataclass(slots=True)
class SchemaReport:
    """What :func:`ensure_schema` did (or, with ``dry_run``, would do)."""

    created_types: list[str] = field(default_factory=list)
    added_attributes: dict[str, list[str]] = field(default_factory=dict)
    approved_types: list[str] = field(default_factory=list)
    created_lead_fields: list[str] = field(default_factory=list)
    failed_lead_fields: dict[str, str] = field(default_factory=dict)
    missing_company_fields: list[FieldSpec] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created_types or self.added_attributes or self.approved_types or self.created_lead_fields)

    def lines(self) -> list[str]:
        out = [f"created activity type {name}" for name in self.created_types]
        out += [f"added attributes {', '.join(attrs)} to {name}" for name, attrs in self.added_attributes.items()]
        out += [f"approved activity type {name}" for name in self.approved_types]
        out += [f"created lead field {name}" for name in self.created_lead_fields]
        out += [f"could not create lead field {name}: {why}" for name, why in self.failed_lead_fields.items()]
        if not self.changed and not self.failed_lead_fields:
            out.append("activity types and lead fields are in place: nothing to do")
        if self.missing_company_fields:
            out.append("create these company fields in Marketo Admin > Field Management (the API cannot):")
            out += [f"  {f.name} ({f.display_name}, {f.data_type})" for f in self.missing_company_fields]
        return out


def ensure_schema(hook: MarketoHook, *, dry_run: bool = False, leave_drafts: Collection[str] = ()) -> SchemaReport:
    """Create and approve the activity types and create the lead fields that are missing (idempotent).

    A second run sends no create or approve call. Company fields are only checked.

    :param leave_drafts: apiNames to create but not approve (a Marketo admin reviews them first; activities
        of a draft type are refused by Marketo and wait in the ledger as skipped until replayed).
    """
    report = SchemaReport()
    existing = {str(t.get("apiName")): t for t in hook.list_activity_types()}
    for spec in ACTIVITY_TYPES:
        current = existing.get(spec.api_name)
        if current is None:
            report.created_types.append(spec.api_name)
            if spec.api_name not in leave_drafts:
                report.approved_types.append(spec.api_name)
            if not dry_run:
                hook.create_activity_type(
                    spec.api_name,
                    spec.name,
                    trigger_name=spec.trigger_name,
                    filter_name=spec.filter_name,
                    primary_attribute=spec.primary.as_attribute(),
                    attributes=[a.as_attribute() for a in spec.attributes],
                    description=spec.description,
                )
                if spec.api_name not in leave_drafts:
                    hook.approve_activity_type(spec.api_name)
            continue
        have = _names(current.get("attributes") or ()) | _names([current.get("primaryAttribute") or {}])
        missing = [a for a in spec.attributes if a.name not in have]
        if missing:
            report.added_attributes[spec.api_name] = [a.name for a in missing]
            if not dry_run:
                hook.add_activity_type_attributes(spec.api_name, [a.as_attribute() for a in missing])
        if spec.api_name in leave_drafts:
            continue
        if missing or str(current.get("status", "approved")) != "approved":
            report.approved_types.append(spec.api_name)
            if not dry_run:
                hook.approve_activity_type(spec.api_name)

    lead_fields = _names(hook.describe_leads())
    to_create = [f for f in LEAD_FIELDS if f.name not in lead_fields]
    if to_create and not dry_run:
        results = hook.create_lead_fields([f.as_lead_field() for f in to_create])
        for spec_field, result in zip(to_create, results, strict=True):
            if result.ok:
                report.created_lead_fields.append(spec_field.name)
            else:
                report.failed_lead_fields[spec_field.name] = "; ".join(f"{r.code} {r.message}" for r in result.reasons)
    elif to_create:
        report.created_lead_fields = [f.name for f in to_create]

    company_fields = _names(hook.describe_companies())
    report.missing_company_fields = [f for f in COMPANY_FIELDS if f.name not in company_fields]
    return report


def _names(fields: Iterable[Any]) -> set[str]:
    """Field names from describe answers (``name``, ``apiName`` or ``rest.name``)."""
    names = set()
    for f in fields:
        if not isinstance(f, dict):
            continue
        name = f.get("name") if "apiName" not in f else f.get("apiName")
        rest = f.get("rest")
        if isinstance(rest, dict) and rest.get("name"):
            name = rest["name"]
        if name:
            names.add(str(name))
    return names
