"""Batches and per-record results through the wire: size limits, long reads, skipped records, CRM sync, lists."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_fbmkto.hooks.marketo import MarketoHook
from airflow_provider_fbmkto.hooks.marketo_types import CrmSyncedCompanies, RecordResult
from airflow_provider_fbmkto.testing.marketo import CallRecord, MarketoEmulator

ONE_MB = 1024 * 1024

MakeMarketo = Callable[..., MarketoEmulator]


def lead_ids(results: list[RecordResult]) -> list[int]:
    assert all(r.id is not None for r in results)
    return [r.id for r in results if r.id is not None]


def body_size(call: CallRecord) -> int:
    return len(json.dumps(call.body, separators=(",", ":")).encode())


def test_a_1_5_mb_batch_is_split_before_sending(marketo: MarketoEmulator) -> None:
    records = [{"email": f"big{i}@example.com", "lastName": "x" * 5000} for i in range(300)]
    results = MarketoHook().upsert_leads(records)

    assert [r.index for r in results] == list(range(300))
    assert {r.status for r in results} == {"created"}
    writes = [c for c in marketo.rest_calls() if c.path == "/rest/v1/leads.json"]
    assert len(writes) == 2
    assert all(c.status == 200 and body_size(c) < ONE_MB for c in writes)
    assert sum(len(c.body["input"]) for c in writes) == 300


def test_a_413_from_the_server_is_recovered_by_halving(marketo: MarketoEmulator) -> None:
    marketo.inject_fault("413", path_prefix="/rest/v1/leads.json")
    results = MarketoHook().upsert_leads([{"email": f"u{i}@example.com"} for i in range(10)])

    assert {r.status for r in results} == {"created"}
    assert [r.index for r in results] == list(range(10))
    writes = [c for c in marketo.rest_calls() if c.path == "/rest/v1/leads.json"]
    assert [c.status for c in writes] == [413, 200, 200]
    assert [len(c.body["input"]) for c in writes[1:]] == [5, 5]
    assert {lead["email"] for lead in marketo.leads()} == {f"u{i}@example.com" for i in range(10)}


def test_a_record_over_1_mb_is_skipped_unsent_and_the_rest_written(marketo: MarketoEmulator) -> None:
    records = [
        {"email": "a@example.com"},
        {"email": "huge@example.com", "lastName": "x" * ONE_MB},
        {"email": "b@example.com"},
    ]
    results = MarketoHook().upsert_leads(records)

    assert [(r.index, r.status) for r in results] == [(0, "created"), (1, "skipped"), (2, "created")]
    assert results[1].reasons[0].code == "413"
    assert all(c.status != 413 for c in marketo.rest_calls())
    assert {lead["email"] for lead in marketo.leads()} == {"a@example.com", "b@example.com"}


def test_a_long_filter_goes_as_post_with_method_get(marketo: MarketoEmulator) -> None:
    emails = [f"someone.with.a.rather.long.address.{i}@subdomain.example.com" for i in range(300)]
    hook = MarketoHook()
    hook.upsert_leads([{"email": e} for e in emails[:250]])
    found = list(hook.get_leads_by_email(emails, ["email", "firstName"]))

    assert sorted(lead["email"] for lead in found) == sorted(emails[:250])
    read = marketo.rest_calls()[-1]
    assert (read.method, read.effective_method, read.path, read.status) == ("POST", "GET", "/rest/v1/leads.json", 200)
    assert read.query["filterType"] == "email"
    assert len(read.query["filterValues"].split(",")) == 300


def test_short_reads_are_plain_gets_chunked_by_300(marketo: MarketoEmulator) -> None:
    hook = MarketoHook()
    emails = [f"u{i}@x.io" for i in range(310)]
    hook.upsert_leads([{"email": e} for e in emails])
    found = list(hook.get_leads_by_email(emails))
    reads = [c for c in marketo.rest_calls() if c.effective_method == "GET"]
    assert len(found) == 310
    assert [(c.method, len(c.query["filterValues"].split(","))) for c in reads] == [("GET", 300), ("GET", 10)]


def test_a_partly_skipped_batch_reports_each_record(marketo: MarketoEmulator) -> None:
    records: list[dict[str, Any]] = [
        {"email": "ok1@example.com"},
        {"email": "bad-field@example.com", "noSuchField": 1},
        {"firstName": "no lookup value"},
        {"email": "ok2@example.com"},
    ]
    results = MarketoHook().upsert_leads(records)

    assert [(r.index, r.status) for r in results] == [(0, "created"), (1, "skipped"), (2, "skipped"), (3, "created")]
    assert [reason.code for reason in results[1].reasons] == ["1006"]
    assert "noSuchField" in results[1].reasons[0].message
    assert [reason.code for reason in results[2].reasons] == ["1003"]
    assert results[0].id is not None
    assert results[1].id is None


@pytest.mark.parametrize("mode", ["response", "record"])
def test_crm_synced_companies_are_detected_and_skipped(make_marketo: MakeMarketo, mode: str) -> None:
    emu = make_marketo(crm_synced=mode)
    hook = MarketoHook()
    companies = [{"externalCompanyId": f"fbmkto:c{i}.com", "company": f"C{i}"} for i in range(450)]
    results = hook.upsert_companies(companies)

    assert hook.crm_synced is True
    assert len(results) == 450
    assert {r.status for r in results} == {"skipped"}
    assert {reason.code for r in results for reason in r.reasons} == {"1018"}
    writes = [c for c in emu.rest_calls() if c.path == "/rest/v1/companies.json"]
    # response-level: the first refusal stops further batches; record-level: each batch answers per record
    assert len(writes) == (1 if mode == "response" else 2)
    assert emu.companies() == []
    assert MarketoHook().companies_writable() is False
    with pytest.raises(CrmSyncedCompanies, match="lead fields"):
        MarketoHook().upsert_companies(companies[:1], raise_if_crm_synced=True)


def test_companies_are_written_and_read_when_not_crm_synced(marketo: MarketoEmulator) -> None:
    hook = MarketoHook()
    assert hook.companies_writable() is True
    results = hook.upsert_companies(
        [
            {"externalCompanyId": "fbmkto:acme.com", "company": "Acme", "fbInvoiceCount": 3},
            {"externalCompanyId": "fbmkto:bigco-holdings", "company": "BigCo", "fbPaymentStatus": "overdue"},
        ]
    )
    assert [r.status for r in results] == ["created", "created"]
    again = hook.upsert_companies([{"externalCompanyId": "fbmkto:acme.com", "fbInvoiceCount": 4}])
    assert again[0].status == "updated"
    assert again[0].id == results[0].id
    found = list(hook.get_companies("externalCompanyId", ["fbmkto:acme.com"], ["company", "fbInvoiceCount"]))
    assert [(c["company"], c["fbInvoiceCount"]) for c in found] == [("Acme", 4)]
    assert hook.crm_synced is False
    assert {"fbPaymentTerms", "fbInvoiceCount"} <= {f["name"] for f in hook.describe_companies()}


def test_static_lists_report_per_lead(make_marketo: MakeMarketo) -> None:
    emu = make_marketo(lists={1001: "paid"})
    hook = MarketoHook()
    ids = lead_ids(hook.upsert_leads([{"email": f"l{i}@x.io"} for i in range(3)]))
    added = hook.add_to_list(1001, [ids[0], ids[1], 999999])
    assert [(r.index, r.status) for r in added] == [(0, "added"), (1, "added"), (2, "skipped")]
    assert added[2].reasons[0].code == "1004"
    removed = hook.remove_from_list(1001, [ids[1], ids[2]])
    assert [(r.status, [x.code for x in r.reasons]) for r in removed] == [("removed", []), ("skipped", ["1015"])]
    assert emu.list_members(1001) == [ids[0]]


def test_campaign_requests_go_100_leads_at_a_time(marketo: MarketoEmulator) -> None:
    marketo.create_campaign("Collections nurture", 77)
    hook = MarketoHook()
    ids = lead_ids(hook.upsert_leads([{"email": f"c{i}@x.io"} for i in range(250)]))
    assert hook.trigger_campaign(77, ids) == 3
    assert [len(r["leadIds"]) for r in marketo.campaign_requests()] == [100, 100, 50]
    assert sorted(i for r in marketo.campaign_requests() for i in r["leadIds"]) == sorted(ids)


def test_custom_activities_are_written_and_read_back_in_chunks(marketo: MarketoEmulator) -> None:
    type_id = marketo.create_activity_type_direct(
        "fbInvoiceSent", "Invoice Sent", attributes=[("amount", "Amount", "float")]
    )
    hook = MarketoHook()
    ids = lead_ids(hook.upsert_leads([{"email": f"a{i}@x.io"} for i in range(35)]))
    when = datetime(2025, 3, 5, 12, tzinfo=timezone.utc)
    activities = [
        {
            "leadId": lead,
            "activityDate": when.isoformat(),
            "activityTypeId": type_id,
            "primaryAttributeValue": f"INV-{n}",
            "attributes": [{"apiName": "amount", "value": 10.5}],
        }
        for n, lead in enumerate(ids)
    ]
    activities.insert(3, {**activities[0], "leadId": 123456789})  # no such lead
    results = hook.add_activities(activities)

    assert len(results) == 36
    assert results[3].status == "skipped"
    assert results[3].reasons[0].code == "1004"
    assert sum(r.status == "added" for r in results) == 35
    assert hook.activity_type_ids()["fbInvoiceSent"] == type_id

    read = list(hook.iter_activities(when - timedelta(days=1), [type_id], ids))
    assert sorted(a["primaryAttributeValue"] for a in read) == sorted(f"INV-{n}" for n in range(35))
    pages = [c for c in marketo.rest_calls() if c.path == "/rest/v1/activities.json"]
    assert [len(c.query["leadIds"].split(",")) for c in pages] == [30, 5]
    with pytest.raises(ValueError, match="timezone-aware"):
        next(hook.iter_activities(datetime(2025, 1, 1), [type_id]))
