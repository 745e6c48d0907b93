"""The Marketo schema this provider writes into: custom activity types, lead fields, company fields.

One place for the names (DESIGN "Names users will see"): the pipeline maps payloads onto these, and
``fbmkto setup-marketo`` creates what the API can create (:func:`ensure_schema`). Company fields cannot be
created through the API; they are listed for an admin to add in Marketo's UI.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from airflow_provider_fbmkto.sync.marketo_fit import COMPANY_FACTS_ON_LEADS, MarketoFit
from airflow_provider_fbmkto.sync.plan import ActivityTypeNames

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
    """A custom activity type: its primary attribute is what Marketo shows as the activity's value.

    :param kind: the :class:`~airflow_provider_fbmkto.sync.plan.ActivityTypeNames` field naming its apiName.
    """

    kind: str
    api_name: str
    name: str
    trigger_name: str
    filter_name: str
    description: str
    primary: FieldSpec
    attributes: tuple[FieldSpec, ...]

    def named(self, api_name: str) -> ActivityTypeSpec:
        """This type under another apiName (an account's ``activity_types``).

        Marketo wants the name, trigger and filter names unique per instance as well, so a renamed type
        carries its apiName in them: two accounts with their own types can share one instance.
        """
        if api_name == self.api_name:
            return self
        return replace(
            self,
            api_name=api_name,
            name=f"{self.name} ({api_name})",
            trigger_name=f"{self.trigger_name} ({api_name})",
            filter_name=f"{self.filter_name} ({api_name})",
        )


ACCOUNT_ID = FieldSpec("fbAccountId", "FreshBooks Account", "string", "FreshBooks account id")
AMOUNT = FieldSpec("amount", "Amount", "float", "Amount in the invoice's currency")
CURRENCY = FieldSpec("currency", "Currency", "string", "ISO 4217 currency code")
DUE_DATE = FieldSpec("dueDate", "Due Date", "date")
INVOICE_NUMBER = FieldSpec("invoiceNumber", "Invoice Number", "string", "FreshBooks invoice number")

INVOICE_SENT = ActivityTypeSpec(
    kind="invoice_sent",
    api_name="fbInvoiceSent",
    name="Invoice Sent",
    trigger_name="FreshBooks Invoice Is Sent",
    filter_name="Was Sent FreshBooks Invoice",
    description="A FreshBooks invoice was sent to the lead's client",
    primary=INVOICE_NUMBER,
    attributes=(ACCOUNT_ID, AMOUNT, CURRENCY, DUE_DATE),
)
PAYMENT_RECEIVED = ActivityTypeSpec(
    kind="payment_received",
    api_name="fbPaymentReceived",
    name="Payment Received",
    trigger_name="FreshBooks Payment Is Received",
    filter_name="Made FreshBooks Payment",
    description="FreshBooks recorded a payment from the lead's client",
    primary=FieldSpec("paymentId", "Payment ID", "string", "FreshBooks payment id"),
    attributes=(ACCOUNT_ID, AMOUNT, CURRENCY, INVOICE_NUMBER),
)
INVOICE_OVERDUE = ActivityTypeSpec(
    kind="invoice_overdue",
    api_name="fbInvoiceOverdue",
    name="Invoice Overdue",
    trigger_name="FreshBooks Invoice Becomes Overdue",
    filter_name="Had FreshBooks Invoice Overdue",
    description="A FreshBooks invoice of the lead's client passed its due date unpaid",
    primary=INVOICE_NUMBER,
    attributes=(ACCOUNT_ID, AMOUNT, CURRENCY, DUE_DATE, FieldSpec("daysOverdue", "Days Overdue", "integer")),
)
ACTIVITY_TYPES: tuple[ActivityTypeSpec, ...] = (INVOICE_SENT, PAYMENT_RECEIVED, INVOICE_OVERDUE)


def activity_types_for(names: ActivityTypeNames) -> tuple[ActivityTypeSpec, ...]:
    """The three activity types under an account's apiNames (``activity_types:`` in the accounts config)."""
    return tuple(spec.named(getattr(names, spec.kind)) for spec in ACTIVITY_TYPES)


#: Each lead fact's field (DESIGN "Fitting the customer's Marketo"): default API name, label, data type. The
#: names are :data:`~airflow_provider_fbmkto.sync.marketo_fit.DEFAULT_LEAD_FIELDS`; an account may map a fact to
#: another name (same data type) or switch it off.
LEAD_FACT_FIELDS: dict[str, FieldSpec] = {
    "first_name": FieldSpec("firstName", "First Name", "string"),
    "last_name": FieldSpec("lastName", "Last Name", "string"),
    "payment_status": FieldSpec(
        "fbPaymentStatus", "FreshBooks Payment Status", "string", "paid / current / partial / overdue / none"
    ),
    "outstanding_balance": FieldSpec("fbOutstandingBalance", "FreshBooks Outstanding Balance", "currency"),
    "last_payment_date": FieldSpec("fbLastPaymentDate", "FreshBooks Last Payment Date", "date"),
    "company_payment_status": FieldSpec(
        "fbCompanyPaymentStatus", "FreshBooks Company Payment Status", "string", "the worst status of the company"
    ),
    "company_outstanding_balance": FieldSpec(
        "fbCompanyOutstandingBalance", "FreshBooks Company Outstanding Balance", "currency"
    ),
    "company_invoice_count": FieldSpec("fbCompanyInvoiceCount", "FreshBooks Company Invoice Count", "integer"),
    "company_payment_terms": FieldSpec("fbCompanyPaymentTerms", "FreshBooks Company Payment Terms", "string"),
    "company_average_days_to_pay": FieldSpec(
        "fbCompanyAverageDaysToPay", "FreshBooks Company Average Days To Pay", "float"
    ),
}
#: Each company fact's field, as :data:`LEAD_FACT_FIELDS` (``company`` and ``website`` are standard fields).
COMPANY_FACT_FIELDS: dict[str, FieldSpec] = {
    "company_name": FieldSpec("company", "Company Name", "string"),
    "website": FieldSpec("website", "Website", "url"),
    "payment_terms": FieldSpec("fbPaymentTerms", "FreshBooks Payment Terms", "string", 'e.g. "Net 30"'),
    "outstanding_balance": FieldSpec("fbOutstandingBalance", "FreshBooks Outstanding Balance", "currency"),
    "invoice_count": FieldSpec("fbInvoiceCount", "FreshBooks Invoice Count", "integer"),
    "payment_status": FieldSpec("fbPaymentStatus", "FreshBooks Payment Status", "string"),
    "last_payment_date": FieldSpec("fbLastPaymentDate", "FreshBooks Last Payment Date", "date"),
    "average_days_to_pay": FieldSpec("fbAverageDaysToPay", "FreshBooks Average Days To Pay", "float"),
}
#: Standard fields every instance has: never created, never reported missing.
STANDARD_FIELDS = frozenset({"firstName", "lastName", "company", "website"})


def lead_fields_for(fit: MarketoFit, *, company_facts: bool) -> tuple[FieldSpec, ...]:
    """The custom lead fields an account writes, under its names (``company_facts``: the company facts too)."""
    out = []
    for fact, name in fit.lead_field_names().items():
        if fact in COMPANY_FACTS_ON_LEADS and not company_facts:
            continue
        if name not in STANDARD_FIELDS:
            out.append(replace(LEAD_FACT_FIELDS[fact], name=name))
    return tuple(out)


def company_fields_for(fit: MarketoFit) -> tuple[FieldSpec, ...]:
    """The custom company fields an account writes, under its names (none when it writes no companies)."""
    if not fit.writes_companies:
        return ()
    named = fit.company_field_names().items()
    return tuple(replace(COMPANY_FACT_FIELDS[fact], name=name) for fact, name in named if name not in STANDARD_FIELDS)


#: The provider's own custom fields under their default names (what ``setup-marketo`` creates by default).
LEAD_FIELDS: tuple[FieldSpec, ...] = lead_fields_for(MarketoFit(), company_facts=False)
COMPANY_FIELDS: tuple[FieldSpec, ...] = company_fields_for(MarketoFit())


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


def ensure_schema(
    hook: MarketoHook,
    *,
    types: Iterable[ActivityTypeSpec] = ACTIVITY_TYPES,
    lead_fields: Iterable[FieldSpec] = LEAD_FIELDS,
    company_fields: Iterable[FieldSpec] = COMPANY_FIELDS,
    dry_run: bool = False,
    leave_drafts: Collection[str] = (),
) -> SchemaReport:
    """Create, complete and approve the activity types and create the lead fields that are missing (idempotent).

    Marketo's create takes a type's primary attribute only, so a new type is created, then given its
    attributes (``attributes/create.json``), then approved; a type that exists but lacks attributes gets
    them and is approved again. A second run sends no create, attribute or approve call. Company fields are
    only checked (the API cannot create them).

    :param types: the activity types to provision (default the provider's three under their default names;
        :func:`activity_types_for` gives an account's).
    :param lead_fields: the custom lead fields to create when missing (:func:`lead_fields_for` gives an account's).
    :param company_fields: the custom company fields to check (listed for an admin when missing).
    :param leave_drafts: apiNames to create but not approve (a Marketo admin reviews them first; the preflight
        of a run then stops it before anything is sent, naming the draft).
    """
    report = SchemaReport()
    existing = {str(t.get("apiName")): t for t in hook.list_activity_types()}
    for spec in _unique(types):
        current = existing.get(spec.api_name)
        if current is None:
            report.created_types.append(spec.api_name)
            if not dry_run:
                hook.create_activity_type(
                    spec.api_name,
                    spec.name,
                    trigger_name=spec.trigger_name,
                    filter_name=spec.filter_name,
                    primary_attribute=spec.primary.as_attribute(),
                    description=spec.description,
                )
            missing = list(spec.attributes)
        else:
            missing = missing_attributes(spec, current)
        if missing:
            report.added_attributes[spec.api_name] = [a.name for a in missing]
            if not dry_run:
                hook.add_activity_type_attributes(spec.api_name, [a.as_attribute() for a in missing])
        if spec.api_name in leave_drafts:
            continue
        if current is None or missing or str(current.get("status", "approved")) != "approved":
            report.approved_types.append(spec.api_name)
            if not dry_run:
                hook.approve_activity_type(spec.api_name)

    existing_lead_fields = names_of(hook.describe_leads())
    to_create = [f for f in _unique_fields(lead_fields) if f.name not in existing_lead_fields]
    if to_create and not dry_run:
        results = hook.create_lead_fields([f.as_lead_field() for f in to_create])
        for spec_field, result in zip(to_create, results, strict=True):
            if result.ok:
                report.created_lead_fields.append(spec_field.name)
            else:
                report.failed_lead_fields[spec_field.name] = "; ".join(f"{r.code} {r.message}" for r in result.reasons)
    elif to_create:
        report.created_lead_fields = [f.name for f in to_create]

    wanted_company_fields = _unique_fields(company_fields)
    existing_company_fields = names_of(hook.describe_companies()) if wanted_company_fields else set()
    report.missing_company_fields = [f for f in wanted_company_fields if f.name not in existing_company_fields]
    return report


def _unique_fields(fields: Iterable[FieldSpec]) -> list[FieldSpec]:
    """The fields once each (Marketo names are case-insensitive; the first spelling wins)."""
    seen: dict[str, FieldSpec] = {}
    for f in fields:
        seen.setdefault(f.name.lower(), f)
    return list(seen.values())


def missing_attributes(spec: ActivityTypeSpec, described: Mapping[str, Any]) -> list[FieldSpec]:
    """The secondary attributes of ``spec`` that the described type (a ``types.json`` entry) lacks.

    Only secondary attributes count: Marketo takes an activity's ``attributes`` from those alone.
    """
    have = names_of(described.get("attributes") or ())
    return [a for a in spec.attributes if a.name not in have]


def _unique(types: Iterable[ActivityTypeSpec]) -> list[ActivityTypeSpec]:
    seen: dict[str, ActivityTypeSpec] = {}
    for spec in types:
        seen.setdefault(spec.api_name, spec)
    return list(seen.values())


def names_of(fields: Iterable[Any]) -> set[str]:
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
