"""Faults mid-load, then retry or replay: exactly the missing records are written, nothing twice."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.e2e.conftest import World, day, make_world

pytestmark = pytest.mark.e2e

ACTIVITY_WRITES = "/rest/v1/activities/external.json"


def _invoices(w: World, n: int) -> None:
    client = w.fb.add_client(fname="Dana", lname="Cole", email="dana@initech.io")
    for _ in range(n):
        w.fb.add_invoice(customerid=client["id"], create_date=day(5).isoformat(), due_offset_days=30, amount="10.00")


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


def test_unapproved_activity_type_is_skipped_with_reason_then_replayed_after_the_fix(airflow_home, tmp_path):
    for w in make_world(airflow_home, tmp_path):
        # Provisioned, but fbInvoiceSent left a draft for an admin to approve.
        assert w.cli("setup-marketo", "--conn-id", "marketo_default", "--leave-draft", "fbInvoiceSent") == 0
        assert w.cli("authorize", "--conn-id", "freshbooks_acme", "--code", w.fb.issue_code()) == 0
        _invoices(w, 2)

        w.ok(day(4))
        assert w.mkto.activities() == []
        shown = subprocess.run(
            [sys.executable, "-m", "airflow_provider_fbmkto.cli", "ledger", "show-failed", "--account", "acme"],
            env=w.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert shown.count("invoice_sent:acme:") == 2
        assert "fbInvoiceSent" in shown  # the reason names the type

        assert w.cli("setup-marketo", "--conn-id", "marketo_default") == 0  # the fix: approve it
        w.ok(day(4))  # a plain rerun does not resend what Marketo skipped
        assert w.mkto.activities() == []
        w.ok(day(4), conf={"replay_failed": True})
        assert len(w.mkto.activities()) == 2
        w.ok(day(4), conf={"replay_failed": True})
        assert len(w.mkto.activities()) == 2
        assert w.duplicates() == 0
