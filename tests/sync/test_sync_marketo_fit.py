"""``marketo:`` of an account: parsing with field-naming errors, and the mapping onto the customer's fields."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from sync_factories import client, invoice

from airflow_provider_fbmkto.sync.config import parse_config_collecting
from airflow_provider_fbmkto.sync.health import summarize
from airflow_provider_fbmkto.sync.mapping import company_payload, lead_payload, plan_leads
from airflow_provider_fbmkto.sync.marketo_fit import CompaniesMode, LeadPolicy, MarketoFit
from airflow_provider_fbmkto.sync.matching import CompanyMatch
from airflow_provider_fbmkto.sync.plan import MappingContext

NY = ZoneInfo("America/New_York")
AS_OF = datetime(2025, 3, 5, tzinfo=timezone.utc)
MATCH = CompanyMatch("bigco-holdings", "BigCo Holdings", "bigco.io", 0)


def parse(marketo: object, defaults: dict[str, object] | None = None) -> tuple[list[object], list[str]]:
    acct = {
        "name": "acme",
        "freshbooks_conn_id": "fb",
        "marketo_conn_id": "mk",
        "schedule": "@daily",
        "start_date": "2025-01-01",
        "marketo": marketo,
    }
    data: dict[str, object] = {"accounts": [acct]}
    if defaults:
        data["defaults"] = defaults
    accounts, errors = parse_config_collecting(data, source="f.yaml")
    return list(accounts), [str(e) for e in errors]


def test_marketo_section_parses_with_defaults_merged() -> None:
    (acct,), errors = parse(
        {"lead_fields": {"payment_status": "Billing_Status__c", "last_payment_date": None}, "leads": {"create": False}},
        defaults={"marketo": {"leads": {"partition": "EMEA"}, "companies": "lead_fields"}},
    )
    assert errors == []
    fit = acct.marketo  # type: ignore[attr-defined]
    assert fit.lead_field("payment_status") == "Billing_Status__c"
    assert fit.lead_field("last_payment_date") is None
    assert fit.lead_field("outstanding_balance") == "fbOutstandingBalance"  # not named: the default
    assert fit.leads == LeadPolicy(create=False, partition="EMEA")
    assert fit.companies is CompaniesMode.LEAD_FIELDS
    (plain,), _ = parse(None)
    assert plain.marketo == MarketoFit()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("marketo", "expected"),
    [
        (
            {"lead_fields": {"payment_stauts": "x"}},
            "f.yaml: account 'acme': marketo.lead_fields.payment_stauts: unknown fact; did you mean 'payment_status'?",
        ),
        (
            {"lead_fields": {"payment_status": "Billing Status"}},
            "marketo.lead_fields.payment_status: 'Billing Status' is not a Marketo API name",
        ),
        (
            {"lead_fields": {"payment_status": "fbOutstandingBalance"}},
            "marketo.lead_fields.outstanding_balance: 'fbOutstandingBalance' is also the field of 'payment_status'",
        ),
        ({"companies": "crm"}, "marketo.companies: must be one of auto, write, lead_fields, off, got text 'crm'"),
        ({"leads": {"create": "no"}}, "marketo.leads.create: must be true or false (unquoted), got 'no'"),
        ({"leads": {"partiton": "EMEA"}}, "marketo.leads.partiton: unknown key; did you mean 'partition'?"),
    ],
    ids=["unknown-fact", "not-an-api-name", "two-facts-one-field", "bad-mode", "create-not-bool", "typo"],
)
def test_marketo_section_errors_name_the_field_and_the_fix(marketo: object, expected: str) -> None:
    accounts, errors = parse(marketo)
    assert accounts == []
    assert any(expected in e for e in errors), errors


def test_unquoted_off_is_the_off_mode() -> None:
    (acct,), _ = parse({"companies": False})  # YAML reads `companies: off` as false
    assert acct.marketo.companies is CompaniesMode.OFF  # type: ignore[attr-defined]


def ctx(**fit: object) -> MappingContext:
    refused = bool(fit.pop("refused", False))
    return MappingContext("acme", "ACME01", NY, fit=MarketoFit(**fit), companies_refused=refused)  # type: ignore[arg-type]


def test_lead_fields_are_renamed_switched_off_and_blank_texts_left_out() -> None:
    s = summarize([invoice(amount="120.00", due_date=date(2025, 3, 31))], as_of=AS_OF, tz=NY)
    c = ctx(lead_fields=(("payment_status", "Billing_Status__c"), ("last_payment_date", None)))
    record = lead_payload("ann@bigco.io", client(fname="  ", lname="Lee"), s, MATCH, c).record()
    assert record == {
        "email": "ann@bigco.io",
        "externalCompanyId": "fbmkto:bigco-holdings",
        "lastName": "Lee",
        "Billing_Status__c": "current",
        "fbOutstandingBalance": "120.00",
    }


def test_company_fields_are_renamed_and_switched_off() -> None:
    s = summarize([invoice(amount="50.00", due_offset_days=30)], as_of=AS_OF, tz=NY)
    c = ctx(company_fields=(("payment_terms", "Terms__c"), ("average_days_to_pay", None), ("website", None)))
    record = company_payload(MATCH, s, c).record()
    assert record["Terms__c"] == "Net 30"
    assert "fbPaymentTerms" not in record
    assert "fbAverageDaysToPay" not in record
    assert "website" not in record
    assert (record["externalCompanyId"], record["company"]) == ("fbmkto:bigco-holdings", "BigCo Holdings")


@pytest.mark.parametrize(
    ("fit", "on_leads", "linked"),
    [
        ({}, False, True),
        ({"refused": True}, True, False),  # auto on a CRM-synced instance
        ({"companies": CompaniesMode.WRITE, "refused": True}, False, False),
        ({"companies": CompaniesMode.LEAD_FIELDS}, True, False),
        ({"companies": CompaniesMode.OFF}, False, False),
    ],
    ids=["auto-writable", "auto-refused", "write-refused", "lead-fields", "off"],
)
def test_company_facts_go_on_leads_where_companies_are_not_written(
    fit: dict[str, object], on_leads: bool, linked: bool
) -> None:
    c = ctx(**fit)
    clients = [client(id=1, email="ann@bigco.io"), client(id=2, email="bob@bigco.io")]
    invoices = [invoice(id=1, customerid=1, amount="100.00"), invoice(id=2, customerid=2, amount="60.00")]
    matches = {1: MATCH, 2: MATCH}
    summary = summarize(invoices, as_of=AS_OF, tz=NY)
    companies = {MATCH.key: (MATCH, summary)}
    leads = plan_leads(clients, invoices, [], matches, as_of=AS_OF, ctx=c, companies=companies).items
    for lead in leads:
        record = lead.record()
        assert ("externalCompanyId" in record) is linked
        assert ("fbCompanyInvoiceCount" in record) is on_leads
        if on_leads:
            assert (record["fbCompanyInvoiceCount"], record["fbCompanyOutstandingBalance"]) == (2, "160.00")
    assert replace(c, companies_refused=False).writes_companies is (
        c.fit.companies in (CompaniesMode.AUTO, CompaniesMode.WRITE)
    )
