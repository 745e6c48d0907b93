"""The load's preflight against the strict Marketo emulator: what it finds missing, the fix it names, its calls."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_fbmkto.cli import main
from airflow_provider_fbmkto.hooks.marketo import MarketoHook
from airflow_provider_fbmkto.hooks.marketo_schema import ACTIVITY_TYPES, INVOICE_SENT, ActivityTypeSpec, ensure_schema
from airflow_provider_fbmkto.pipeline.preflight import PreflightFailed, check_marketo, require_ready
from airflow_provider_fbmkto.sync.config_schema import AccountConfig
from airflow_provider_fbmkto.sync.plan import ActivityTypeNames, Segments
from airflow_provider_fbmkto.testing.marketo import MarketoEmulator

MakeMarketo = Callable[..., MarketoEmulator]
ACCOUNT = AccountConfig(
    name="acme",
    freshbooks_conn_id="freshbooks_acme",
    marketo_conn_id="marketo_default",
    schedule="@daily",
    start_date=date(2025, 1, 1),
    segments=Segments(paid_list_id=1001, overdue_list_id=1002),
)
LISTS = {1001: "FB Paid", 1002: "FB Overdue"}


@pytest.fixture
def make_marketo(airflow_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeMarketo]:
    with ExitStack() as stack:

        def make(**options: Any) -> MarketoEmulator:
            options.setdefault("window_seconds", 1.0)
            emu = stack.enter_context(MarketoEmulator(port=0, **options))
            monkeypatch.setenv("AIRFLOW_CONN_MARKETO_DEFAULT", emu.conn_json())
            return emu

        yield make


def provisioned(
    make_marketo: MakeMarketo, types: Sequence[ActivityTypeSpec] = ACTIVITY_TYPES, **options: Any
) -> MarketoEmulator:
    options.setdefault("lists", LISTS)
    emu = make_marketo(**options)
    ensure_schema(MarketoHook(), types=types)
    return emu


def problems(account: AccountConfig = ACCOUNT) -> list[str]:
    return [p.what for p in check_marketo(MarketoHook(), account).problems]


def test_a_provisioned_instance_is_ready_in_five_read_calls(make_marketo: MakeMarketo) -> None:
    emu = provisioned(make_marketo)
    before = len(emu.rest_calls())
    report = require_ready(MarketoHook(), ACCOUNT)
    calls = emu.rest_calls()[before:]
    assert report.ready
    assert {c.method for c in calls} == {"GET"}
    assert sorted(c.path for c in calls) == [
        "/rest/v1/activities/external/types.json",
        "/rest/v1/companies/describe.json",
        "/rest/v1/leads/describe2.json",
        "/rest/v1/lists/1001.json",
        "/rest/v1/lists/1002.json",
    ]
    assert report.calls == 5
    ids = {t["apiName"]: t["id"] for t in emu.activity_types()}
    assert report.type_ids == ids  # the load writes with these instead of reading them again


def test_an_unprovisioned_instance_fails_with_every_problem_and_its_fix(make_marketo: MakeMarketo) -> None:
    make_marketo(company_fields={"fbPaymentTerms": "string"})
    with pytest.raises(PreflightFailed) as err:
        require_ready(MarketoHook(), ACCOUNT)
    message = str(err.value)
    assert message.startswith("Marketo 127.0.0.1:")
    assert "is not ready for account 'acme'; nothing was sent:" in message
    for expected in (
        "activity type fbInvoiceSent (Invoice Sent) does not exist",
        "activity type fbPaymentReceived (Payment Received) does not exist",
        "activity type fbInvoiceOverdue (Invoice Overdue) does not exist",
        "lead fields missing: fbPaymentStatus, fbOutstandingBalance, fbLastPaymentDate",
        "company fields missing: fbOutstandingBalance (currency), fbInvoiceCount (integer)",
        "static list 1001 (segments.paid_list_id) does not exist",
        "static list 1002 (segments.overdue_list_id) does not exist",
    ):
        assert expected in message
    assert "run `fbmkto setup-marketo --conn-id marketo_default`" in message
    assert "create the company fields in Marketo Admin > Field Management" in message
    assert "create the static list in Marketo, or correct segments.paid_list_id in the accounts config" in message
    assert message.count("fbmkto setup-marketo --conn-id") == 1  # each fix said once


def test_a_type_without_attributes_and_a_draft_are_named(make_marketo: MakeMarketo) -> None:
    emu = provisioned(make_marketo, types=[INVOICE_SENT])
    emu.create_activity_type_direct("fbInvoiceOverdue", "Invoice Overdue")  # approved, no secondary attributes
    emu.create_activity_type_direct(
        "acmePaid", "Acme Paid", primary_attribute=("paymentId", "P", "string"), approve=False
    )
    renamed = replace(ACCOUNT, activity_types=ActivityTypeNames(payment_received="acmePaid"))
    found = problems(renamed)
    assert (
        "activity type fbInvoiceOverdue lacks attributes fbAccountId, amount, currency, dueDate, daysOverdue" in found
    )
    assert "activity type acmePaid lacks attributes fbAccountId, amount, currency, invoiceNumber" in found
    assert "activity type acmePaid is not approved (status draft): Marketo refuses its activities" in found
    assert not any("fbPaymentReceived" in p for p in found)  # the account does not write the default name

    assert main(["setup-marketo", "--conn-id", "marketo_default"]) == 0  # the default names: fbInvoiceOverdue
    assert [p for p in problems(renamed) if "fbInvoiceOverdue" in p] == []


def test_a_deleted_list_and_campaigns_are_named(make_marketo: MakeMarketo) -> None:
    provisioned(make_marketo, lists={1001: "FB Paid"}, campaigns={77: "Dunning"})  # list 1002 was deleted
    segments = Segments(paid_list_id=1001, overdue_list_id=1002, on_overdue_campaign_id=77, on_paid_campaign_id=78)
    with_campaigns = replace(ACCOUNT, segments=segments)
    assert problems(with_campaigns) == [
        "static list 1002 (segments.overdue_list_id) does not exist",
        "smart campaign 78 (segments.on_paid_campaign_id) does not exist",
    ]


def test_missing_company_fields_are_fine_on_a_crm_synced_instance(make_marketo: MakeMarketo) -> None:
    provisioned(make_marketo, crm_synced=True, company_fields={})
    report = check_marketo(MarketoHook(), ACCOUNT)
    assert report.ready, report.problems
    assert report.notes == [
        "companies are read-only on this instance (CRM-synced, 1018): company fields are not written"
    ]


def test_a_missing_company_field_on_a_writable_instance_is_the_admins_step(make_marketo: MakeMarketo) -> None:
    fields = {"fbPaymentTerms": "string", "fbOutstandingBalance": "currency", "fbInvoiceCount": "integer"}
    provisioned(make_marketo, company_fields={**fields, "fbPaymentStatus": "string", "fbLastPaymentDate": "date"})
    assert problems() == ["company fields missing: fbAverageDaysToPay (float)"]


def test_fbmkto_check_prints_the_preflight(
    make_marketo: MakeMarketo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    provisioned(make_marketo, lists={1001: "FB Paid"})
    config = tmp_path / "accounts.yaml"
    config.write_text(
        "accounts:\n  - {name: acme, freshbooks_conn_id: freshbooks_acme, marketo_conn_id: marketo_default, "
        "schedule: '@daily', start_date: '2025-01-01', segments: {paid_list_id: 1001, overdue_list_id: 1002}}\n"
    )
    monkeypatch.setenv("AIRFLOW_CONN_FRESHBOOKS_ACME", '{"conn_type": "freshbooks", "host": "http://127.0.0.1:9"}')
    assert main(["check", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] acme: Marketo 127.0.0.1:" in out
    assert "static list 1002 (segments.overdue_list_id) does not exist" in out
