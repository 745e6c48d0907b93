"""The values :mod:`~airflow_provider_fbmkto.sync.mapping` produces: planned Marketo writes and skips.

Each planned write has a ledger ``key`` (:mod:`~airflow_provider_fbmkto.sync.keys`) and a JSON-ready
``payload()``; ``payload_hash(item.payload())`` is what the ledger compares. Nothing here is sent anywhere:
``marketo_input()`` / ``record()`` render the body entries the Marketo hook posts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

from airflow_provider_fbmkto.exceptions import ConfigError
from airflow_provider_fbmkto.sync.health import PaymentStatus
from airflow_provider_fbmkto.sync.keys import payload_hash
from airflow_provider_fbmkto.sync.marketo_fit import MarketoFit

__all__ = [
    "ActivityTypeIds",
    "ActivityTypeNames",
    "FieldValue",
    "MappingContext",
    "Plan",
    "PlannedActivity",
    "PlannedCompany",
    "PlannedLead",
    "PlannedListChange",
    "Segments",
    "Skipped",
    "json_value",
]

FieldValue = str | int | Decimal | date | None
"""A Marketo field value before rendering (``Decimal`` and ``date`` become strings in ``record()``)."""

ActivityTypeIds = Mapping[str, int]
"""Custom activity apiName → Marketo activity type id (read from Marketo by the caller)."""

T = TypeVar("T")


def json_value(value: FieldValue) -> str | int | None:
    """Render a field value for Marketo's JSON: ``Decimal`` in plain notation, dates as ``YYYY-MM-DD``."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date):
        return value.isoformat()
    return value


@dataclass(frozen=True, slots=True)
class ActivityTypeNames:
    """apiNames of the three custom activity types (configurable per account)."""

    invoice_sent: str = "fbInvoiceSent"
    payment_received: str = "fbPaymentReceived"
    invoice_overdue: str = "fbInvoiceOverdue"


@dataclass(frozen=True, slots=True)
class Segments:
    """Static lists mirroring ``fbPaymentStatus`` and campaigns requested for leads entering them.

    All optional. A lead is in at most one of the two lists.
    """

    paid_list_id: int | None = None
    overdue_list_id: int | None = None
    on_overdue_campaign_id: int | None = None
    on_paid_campaign_id: int | None = None


@dataclass(frozen=True, slots=True)
class MappingContext:
    """What every mapping function needs to know about the account.

    :param account: our account name (the ``<acct>`` of ledger keys).
    :param fb_account_id: FreshBooks ``account_id`` (the ``fbAccountId`` activity attribute).
    :param tz: the account time zone.
    :param activity_types: apiNames of the custom activity types.
    :param fit: the account's ``marketo:`` config (field names, companies mode).
    :param companies_refused: Marketo refuses company writes (a CRM-synced instance, ``1018``), as last seen.
    """

    account: str
    fb_account_id: str
    tz: ZoneInfo
    activity_types: ActivityTypeNames = ActivityTypeNames()
    fit: MarketoFit = MarketoFit()  # noqa: RUF009 - frozen, so one shared default is safe
    companies_refused: bool = False

    @property
    def writes_companies(self) -> bool:
        """Whether company writes are planned at all."""
        return self.fit.writes_companies and not self.companies_refused

    @property
    def company_facts_on_leads(self) -> bool:
        """Whether leads carry the company-level facts (``marketo.companies`` and what Marketo allows)."""
        return self.fit.company_facts_on_leads(companies_refused=self.companies_refused)

    @property
    def links_leads_to_companies(self) -> bool:
        """Whether leads carry ``externalCompanyId`` (never pointing at a company the provider does not write)."""
        return self.fit.link_leads_to_companies(companies_refused=self.companies_refused)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A record that produced no write, and why (never dropped silently).

    :param key: the ledger key it would have had, or ``client:<acct>:<id>`` when it has none.
    :param reason: human-readable, e.g. ``"client has no e-mail"``.
    """

    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan(Generic[T]):
    """Planned writes of one kind plus the records skipped on the way."""

    items: tuple[T, ...] = ()
    skipped: tuple[Skipped, ...] = ()


@dataclass(frozen=True, slots=True)
class PlannedActivity:
    """One custom activity to add to a lead.

    :param key: write-once ledger key.
    :param lead_email: e-mail of the lead (lower-cased); the loader turns it into a ``leadId``.
    :param activity_type: apiName (e.g. ``fbInvoiceSent``).
    :param activity_date: when it happened (aware; in the account zone for date-based events).
    :param primary_attribute_value: invoice number, or the FreshBooks payment id.
    :param attributes: ``(apiName, value)`` pairs, sorted by name.
    """

    key: str
    lead_email: str
    activity_type: str
    activity_date: datetime
    primary_attribute_value: str
    attributes: tuple[tuple[str, str], ...]

    def attribute(self, name: str) -> str | None:
        return dict(self.attributes).get(name)

    def payload(self) -> dict[str, object]:
        return {
            "leadEmail": self.lead_email,
            "activityType": self.activity_type,
            "activityDate": self.activity_date.isoformat(),
            "primaryAttributeValue": self.primary_attribute_value,
            "attributes": dict(self.attributes),
        }

    def payload_hash(self) -> str:
        return payload_hash(self.payload())

    def marketo_input(self, lead_id: int, type_ids: ActivityTypeIds) -> dict[str, object]:
        """The ``input`` entry for ``POST /rest/v1/activities/external.json``.

        :raises ConfigError: when Marketo has no activity type with this apiName.
        """
        try:
            type_id = type_ids[self.activity_type]
        except KeyError:
            raise ConfigError(
                f"Marketo has no custom activity type {self.activity_type!r}; create and approve it with "
                f"`fbmkto setup-marketo --conn-id <marketo conn id>`"
            ) from None
        return {
            "leadId": lead_id,
            "activityDate": self.activity_date.isoformat(),
            "activityTypeId": type_id,
            "primaryAttributeValue": self.primary_attribute_value,
            "attributes": [{"apiName": name, "value": value} for name, value in self.attributes],
        }


@dataclass(frozen=True, slots=True)
class PlannedLead:
    """A lead createOrUpdate (lookup field ``email``).

    :param status: the lead's payment status (also in ``fields``; drives list membership).
    :param fields: ``(Marketo field, value)`` pairs, including ``email``.
    """

    key: str
    email: str
    status: PaymentStatus
    fields: tuple[tuple[str, FieldValue], ...]

    def record(self) -> dict[str, str | int | None]:
        """The JSON-ready ``input`` entry for ``POST /rest/v1/leads.json``."""
        return {name: json_value(value) for name, value in self.fields}

    def payload(self) -> dict[str, FieldValue]:
        """The fields as values (``Decimal`` kept, so ``10.0`` and ``10.00`` hash the same)."""
        return dict(self.fields)

    def payload_hash(self) -> str:
        return payload_hash(self.payload())


@dataclass(frozen=True, slots=True)
class PlannedCompany:
    """A company createOrUpdate, deduplicated by ``externalCompanyId``."""

    key: str
    external_id: str
    fields: tuple[tuple[str, FieldValue], ...]

    def record(self) -> dict[str, str | int | None]:
        """The JSON-ready ``input`` entry for ``POST /rest/v1/companies.json``."""
        return {name: json_value(value) for name, value in self.fields}

    def payload(self) -> dict[str, FieldValue]:
        """The fields as values (``Decimal`` kept, so ``10.0`` and ``10.00`` hash the same)."""
        return dict(self.fields)

    def payload_hash(self) -> str:
        return payload_hash(self.payload())


@dataclass(frozen=True, slots=True)
class PlannedListChange:
    """Segment of one lead — static lists and campaigns (state key ``list:<acct>:<email>``).

    Sent only when its hash changes, i.e. when the lead moves between segments (``"paid"``, ``"overdue"``,
    ``None`` for the rest). ``campaigns`` are the smart campaigns to request for the lead once this change
    is written (it entered that segment).
    """

    key: str
    email: str
    segment: str | None
    add_to: tuple[int, ...]
    remove_from: tuple[int, ...]
    campaigns: tuple[int, ...]

    def payload(self) -> dict[str, object]:
        return {
            "email": self.email,
            "segment": self.segment,
            "add": list(self.add_to),
            "remove": list(self.remove_from),
            "campaigns": list(self.campaigns),
        }

    def payload_hash(self) -> str:
        return payload_hash(self.payload())
