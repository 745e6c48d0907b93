"""Faults mid-load, then retry or replay: exactly the missing records are written, nothing twice."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_fbmkto.hooks.marketo import MarketoHook
from airflow_provider_fbmkto.hooks.marketo_schema import INVOICE_OVERDUE, PAYMENT_RECEIVED, ensure_schema
from tests.e2e.conftest import BASE_CONFIG, World, day, make_world

pytestmark = pytest.mark.e2e

ACTIVITY_WRITES = "/rest/v1/activities/external.json"


def _invoices(w: World, n: int) -> list[dict[str, Any]]:
    client = w.fb.add_client(fname="Dana", lname="Cole", email="dana@initech.io")
    return [
        w.fb.add_invoice(customerid=client["id"], create_date=day(5).isoformat(), due_offset_days=30, amount="10.00")
        for _ in range(n)
    ]


def test_5xx_storm_fails_the_load_then_a_rerun_writes_exactly_the_missing(world: World):
    _invoices(world, 5)
    world.mkto.inject_fault("503", count=50, path_prefix=ACTIVITY_WRITES)
    failed = world.run(day(4))
    assert failed.returncode != 0
    assert world.mkto.activities() == []  # the 503s wrote nothing
    assert len(world.mkto.leads()) == 1  # companies and leads before the activities were written
    world.mkto.faults.clear()
    world.ok(day(4))
    assert len(world.mkto.activities()) == 5
    assert world.duplicates() == 0


def test_606_storm_is_absorbed_without_failing_the_run(world: World):
    _invoices(world, 3)
    world.mkto.inject_fault("606", count=3)
    world.ok(day(4))
    assert len(world.mkto.activities()) == 3
    assert world.duplicates() == 0
    assert any("606" in c.codes for c in world.mkto.rest_calls())  # the storm did happen


def test_lost_answer_of_an_activity_batch_is_resolved_by_reading_back(airflow_home, tmp_path):
    """Marketo wrote the batch but the answer never arrived (read timeout): the batch is in doubt. The task
    fails; the rerun reads the activities back and marks them written instead of sending them again."""
    for w in make_world(airflow_home, tmp_path, marketo={"timeout_fault_seconds": 4.0}):
        assert w.cli("setup-marketo", "--conn-id", "marketo_default") == 0
        assert w.cli("authorize", "--conn-id", "freshbooks_acme", "--code", w.fb.issue_code()) == 0
        conn = json.loads(w.env["AIRFLOW_CONN_MARKETO_DEFAULT"])
        conn["extra"]["request_timeout"] = 2
        w.env["AIRFLOW_CONN_MARKETO_DEFAULT"] = json.dumps(conn)
        _invoices(w, 4)
        w.mkto.inject_fault("timeout", count=1, path_prefix=ACTIVITY_WRITES)
        first = w.run(day(4))
        assert first.returncode != 0
        assert len(w.mkto.activities()) == 4  # the write landed although the answer was lost
        writes_before = sum(1 for c in w.mkto.rest_calls() if c.path == ACTIVITY_WRITES)
        out = w.ok(day(4))
        assert "confirmed_written" in out
        assert len(w.mkto.activities()) == 4
        assert w.duplicates() == 0
        assert sum(1 for c in w.mkto.rest_calls() if c.path == ACTIVITY_WRITES) == writes_before


def test_half_provisioned_marketo_fails_the_load_at_once_naming_the_fix_then_runs_after_setup(airflow_home, tmp_path):
    config = BASE_CONFIG.replace("retries: 0 ", "retries: 2 ")
    for w in make_world(airflow_home, tmp_path, config):
        w.env["FBMKTO_RETRY_DELAY_SECONDS"] = "1"
        # What a strict Marketo leaves of a type whose attributes were sent in the create body: none of them.
        w.mkto.create_activity_type_direct("fbInvoiceSent", "Invoice Sent")
        ensure_schema(MarketoHook(), types=[PAYMENT_RECEIVED, INVOICE_OVERDUE])
        assert w.cli("authorize", "--conn-id", "freshbooks_acme", "--code", w.fb.issue_code()) == 0
        invoices = _invoices(w, 2)

        before = len(w.mkto.rest_calls())
        proc = w.run(day(4))
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert "is not ready for account 'acme'; nothing was sent:" in out
        assert "activity type fbInvoiceSent lacks attributes fbAccountId, amount, currency, dueDate" in out
        assert "Fix: run `fbmkto setup-marketo --conn-id marketo_default`. Then run the DAG again." in out
        during = w.mkto.rest_calls()[before:]
        preflights = [c for c in during if c.path == "/rest/v1/activities/external/types.json"]
        assert len(preflights) == 1  # one try: the task was not retried (retries: 2)
        writes = [c for c in during if c.effective_method in ("POST", "DELETE")]
        probes = [c for c in writes if c.body.get("action") == "updateOnly"]  # map's "companies writable?" probe
        assert [c.body["input"] for c in probes] == [[{"externalCompanyId": "fbmkto:__writable-probe__"}]]
        assert [c.path for c in writes if c not in probes] == []  # nothing written
        assert w.mkto.leads() == []
        assert w.mkto.activities() == []

        assert w.cli("setup-marketo", "--conn-id", "marketo_default") == 0
        w.ok(day(4))
        sent = sorted(a["primaryAttributeValue"] for a in w.mkto.activities())
        assert sent == sorted(inv["invoice_number"] for inv in invoices)
        assert all({x["apiName"] for x in a["attributes"]} >= {"amount", "dueDate"} for a in w.mkto.activities())
        skipped = [c.record_codes for c in w.mkto.rest_calls() if c.path == ACTIVITY_WRITES and c.record_codes]
        assert skipped == []  # no activity skipped for an unknown attribute


def test_errors_no_retry_can_fix_fail_the_task_once_naming_the_fix(airflow_home, tmp_path):
    """Revoked FreshBooks authorization, then a wrong Marketo client secret: each fails its task on the first try
    (the account has retries: 2), with the message naming the fix."""
    config = BASE_CONFIG.replace("retries: 0 ", "retries: 2 ")
    for w in make_world(airflow_home, tmp_path, config):
        w.env["FBMKTO_RETRY_DELAY_SECONDS"] = "1"
        assert w.cli("setup-marketo", "--conn-id", "marketo_default") == 0
        assert w.cli("authorize", "--conn-id", "freshbooks_acme", "--code", w.fb.issue_code()) == 0
        _invoices(w, 1)
        w.fb.expire_access_tokens()
        w.fb.revoke_refresh_tokens()
        proc = w.run(day(4))
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert "ReauthorizationRequired: " in out
        assert "fbmkto authorize --conn-id freshbooks_acme" in out
        refreshes = [c for c in w.fb.calls if c.path == "/auth/oauth/token" and c.body["grant_type"] == "refresh_token"]
        assert len(refreshes) == 1  # one try of extract, not three

        assert w.cli("authorize", "--conn-id", "freshbooks_acme", "--code", w.fb.issue_code()) == 0
        conn = json.loads(w.env["AIRFLOW_CONN_MARKETO_DEFAULT"])
        w.env["AIRFLOW_CONN_MARKETO_DEFAULT"] = json.dumps({**conn, "password": "not-the-secret"})
        before = len(w.mkto.calls)
        proc = w.run(day(4))
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert "Marketo rejected the client id/secret of connection 'marketo_default'" in out
        assert "not-the-secret" not in out
        identity = [c for c in w.mkto.calls[before:] if c.path == "/identity/oauth/token"]
        assert len(identity) == 1  # map's one try asked for a token once; no retries
        assert w.mkto.leads() == []


ALERTS = """\
    marketo:
      lead_fields: {{payment_status: acctTier}}
    alerts:
      max_skipped: 0
      notify:
        - {{classpath: tests.e2e.recording_notifier.RecordingNotifier, kwargs: {{path: "{notes}", tag: billing}}}}
"""


def test_a_run_that_left_rows_behind_fails_its_report_and_notifies(airflow_home, tmp_path):
    """The account maps its payment status onto an integer field by mistake: Marketo skips the lead (1001), its
    activity cannot go out; the run completes, then its report fails so Airflow calls the account's notifier."""
    notes = tmp_path / "notified.jsonl"
    config = (BASE_CONFIG + ALERTS).replace("{notes}", str(notes))  # make_world formats it: braces stay doubled
    for w in make_world(airflow_home, tmp_path, config):
        w.mkto.add_lead_field_direct("acctTier", "integer")
        assert w.cli("setup-marketo", "--conn-id", "marketo_default") == 0
        assert w.cli("authorize", "--conn-id", "freshbooks_acme", "--code", w.fb.issue_code()) == 0
        _invoices(w, 1)
        proc = w.run(day(4))
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert "sync of acme left 1 rows skipped by Marketo (alerts.max_skipped 0); 1 rows failed" in out
        assert "fbmkto ledger replay --account acme" in out
        report = json.loads(sorted((w.home / "fbmkto" / "reports" / "acme").glob("*.json"))[-1].read_text())
        kinds = {f["kind"]: f["status"] for f in report["failures"]}
        assert kinds == {"lead": "skipped", "activity": "failed", "list": "skipped"}  # the list row waits for its lead
        assert "1001" in next(f["reason"] for f in report["failures"] if f["kind"] == "lead")
        (note,) = [json.loads(line) for line in notes.read_text().splitlines()]  # called once for the run
        assert (note["dag_id"], note["task_id"], note["tag"]) == ("fbmkto_sync__acme", "report", "billing")
