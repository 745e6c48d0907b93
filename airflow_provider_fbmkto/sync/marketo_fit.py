"""How an account fits the customer's Marketo: field names, who becomes a lead, partitions, companies.

``marketo:`` in the accounts config (DESIGN "Fitting the customer's Marketo"). Every fact the provider writes
has a key here; the account maps it to the Marketo API name of the customer's field, or to ``None`` to never
write it. The defaults are the provider's own names, the ones ``fbmkto setup-marketo`` creates.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "COMPANY_FACTS_ON_LEADS",
    "DEFAULT_COMPANY_FIELDS",
    "DEFAULT_LEAD_FIELDS",
    "CompaniesMode",
    "LeadPolicy",
    "MarketoFit",
]

#: Lead facts → default lead field API names. ``company_*`` are the company-level facts, written onto the leads of
#: a company where companies cannot be written (a CRM-synced instance) or are not wanted (``companies: lead_fields``).
DEFAULT_LEAD_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        "first_name": "firstName",
        "last_name": "lastName",
        "payment_status": "fbPaymentStatus",
        "outstanding_balance": "fbOutstandingBalance",
        "last_payment_date": "fbLastPaymentDate",
        "company_payment_status": "fbCompanyPaymentStatus",
        "company_outstanding_balance": "fbCompanyOutstandingBalance",
        "company_invoice_count": "fbCompanyInvoiceCount",
        "company_payment_terms": "fbCompanyPaymentTerms",
        "company_average_days_to_pay": "fbCompanyAverageDaysToPay",
    }
)
COMPANY_FACTS_ON_LEADS = tuple(k for k in DEFAULT_LEAD_FIELDS if k.startswith("company_"))

#: Company facts → default company field API names.
DEFAULT_COMPANY_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        "company_name": "company",
        "website": "website",
        "payment_terms": "fbPaymentTerms",
        "outstanding_balance": "fbOutstandingBalance",
        "invoice_count": "fbInvoiceCount",
        "payment_status": "fbPaymentStatus",
        "last_payment_date": "fbLastPaymentDate",
        "average_days_to_pay": "fbAverageDaysToPay",
    }
)


class CompaniesMode(enum.Enum):
    """``marketo.companies``: where the company-level facts go."""

    AUTO = "auto"  # write companies; where Marketo refuses them (CRM-synced, 1018) put the facts on lead fields
    WRITE = "write"  # write companies only (a refusal leaves the facts out, reported)
    LEAD_FIELDS = "lead_fields"  # never write companies; the facts go on lead fields
    OFF = "off"  # neither


@dataclass(frozen=True, slots=True)
class LeadPolicy:
    """``marketo.leads``: who becomes a Marketo person.

    :param create: ``False`` = update only: people already in Marketo get fields, activities and lists; the others
        wait in the ledger as "no lead in Marketo" and go through on a later run, once the person exists.
    :param partition: lead partition (``partitionName``) new leads are created in; ``None``: the API user's default.
    :param shared: other accounts syncing into the same Marketo may write this account's people too (and this account
        theirs): a person first written by another account is updated, not held, when that account says so as well
        (see :mod:`~airflow_provider_fbmkto.sync.ownership`).
    """

    create: bool = True
    partition: str | None = None
    shared: bool = False


@dataclass(frozen=True, slots=True)
class MarketoFit:
    """``marketo:`` of one account.

    :param lead_fields: the account's own names, ``(lead fact, API name or None)`` pairs (keys of
        :data:`DEFAULT_LEAD_FIELDS`); a fact not named keeps its default, ``None`` means never write it.
    :param company_fields: likewise for company facts (keys of :data:`DEFAULT_COMPANY_FIELDS`).
    :param leads: who becomes a lead, and in which partition.
    :param companies: where the company-level facts go.
    """

    lead_fields: tuple[tuple[str, str | None], ...] = ()
    company_fields: tuple[tuple[str, str | None], ...] = ()
    leads: LeadPolicy = field(default_factory=LeadPolicy)
    companies: CompaniesMode = CompaniesMode.AUTO

    def lead_field(self, fact: str) -> str | None:
        """The lead field a fact is written to, or ``None`` when the account does not write it."""
        return dict(self.lead_fields).get(fact, DEFAULT_LEAD_FIELDS[fact])

    def company_field(self, fact: str) -> str | None:
        """The company field a fact is written to, or ``None`` when the account does not write it."""
        return dict(self.company_fields).get(fact, DEFAULT_COMPANY_FIELDS[fact])

    def lead_field_names(self) -> dict[str, str]:
        """Every lead fact the account writes → its API name."""
        return {fact: name for fact in DEFAULT_LEAD_FIELDS if (name := self.lead_field(fact))}

    def company_field_names(self) -> dict[str, str]:
        """Every company fact the account writes → its API name."""
        return {fact: name for fact in DEFAULT_COMPANY_FIELDS if (name := self.company_field(fact))}

    @property
    def writes_companies(self) -> bool:
        return self.companies in (CompaniesMode.AUTO, CompaniesMode.WRITE)

    def company_facts_on_leads(self, *, companies_refused: bool) -> bool:
        """Whether leads carry the company-level facts (given whether Marketo refuses company writes)."""
        if self.companies is CompaniesMode.LEAD_FIELDS:
            return True
        return self.companies is CompaniesMode.AUTO and companies_refused

    def link_leads_to_companies(self, *, companies_refused: bool) -> bool:
        """Whether leads carry ``externalCompanyId``: only when the provider writes that company."""
        return self.writes_companies and not companies_refused
