"""The webhook-driven path (receiver → event table → sensor → sync) and reconciliation by bulk export."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone

import pytest
from fastapi import FastAPI

from airflow_provider_fbmkto.plugins.webhooks import build_router
from airflow_provider_fbmkto.testing.server import ThreadedServer
from tests.e2e.conftest import BASE_CONFIG, World, day, make_world

pytestmark = pytest.mark.e2e

WEBHOOK_CONFIG = BASE_CONFIG + "    webhooks: true\n"
BULK_CONFIG = BASE_CONFIG + "    reconcile: {{bulk_threshold: 1, fix_marketo: true}}\n"


def _ready(w: World) -> None:
    assert w.cli("setup-marketo", "--conn-id", "marketo_default") == 0
    assert w.cli("authorize", "--conn-id", "freshbooks_acme", "--code", w.fb.issue_code()) == 0


def test_invoice_sent_by_email_is_dated_at_the_event_and_not_sent_again_by_the_daily_run(airflow_home, tmp_path):
    for w in make_world(airflow_home, tmp_path, WEBHOOK_CONFIG):
        _ready(w)
        receiver = FastAPI()
        receiver.include_router(build_router())
        with ThreadedServer(receiver) as srv:
            url = f"{srv.url}/webhooks/freshbooks/acme"
            assert (
                w.cli("webhooks", "register", "--conn-id", "freshbooks_acme", "--url", url, "--events", "invoice") == 0
            )
            client = w.fb.add_client(fname="Ivy", lname="Park", email="ivy@parkco.io")
            draft = w.fb.add_invoice(customerid=client["id"], create_date=day(5).isoformat(), amount="42.00", status=1)
            before = datetime.now(timezone.utc).replace(microsecond=0)
            w.fb.send_invoice(draft["id"])  # FreshBooks e-mails it: invoice.sendByEmail reaches the receiver
            assert w.fb.wait_for_webhooks(10)

            # The event-driven DAG: its sensor finds the stored event; the sync sends Invoice Sent at its time.
            args = ["dags", "test", "fbmkto_events__acme", day(0).isoformat()]
            proc = subprocess.run(
                [sys.executable, "-m", "airflow", *args],
                env=w.env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        (activity,) = w.timeline("ivy@parkco.io")
        when = datetime.fromisoformat(activity[0].replace("Z", "+00:00"))
        assert activity[1] == "fbInvoiceSent"
        assert before <= when <= datetime.now(timezone.utc)  # the moment of sending, not the invoice date
        # The window holding the invoice date now finds the key written: nothing is sent twice.
        w.ok(day(4))
        assert len(w.timeline("ivy@parkco.io")) == 1


def test_reconcile_by_bulk_export_reports_and_fixes_a_renamed_lead(airflow_home, tmp_path):
    for w in make_world(airflow_home, tmp_path, BULK_CONFIG):
        _ready(w)
        w.env["FBMKTO_EXPORT_POLL_SECONDS"] = "1"
        client = w.fb.add_client(fname="Hal", lname="Orr", email="hal@orrco.io")
        w.fb.add_invoice(customerid=client["id"], create_date=day(5).isoformat(), amount="10.00")
        w.fb.add_client(fname="Una", lname="Orr", email="una@orrco.io")  # 2 clients > bulk_threshold 1
        w.ok(day(4))
        lead = w.lead("hal@orrco.io")
        assert lead["firstName"] == "Hal"
        # Someone edits the lead in Marketo; FreshBooks is the truth for names.
        from airflow_provider_fbmkto.hooks.marketo import MarketoHook

        MarketoHook("marketo_default").upsert_leads([{"email": "hal@orrco.io", "firstName": "Harold"}])
        assert w.lead("hal@orrco.io")["firstName"] == "Harold"
        out = w.ok(day(3))
        exports = [c for c in w.mkto.rest_calls() if c.path.endswith("/export/create.json")]
        assert exports, "reconcile should have used a bulk lead export"
        assert "name_differs" in out
        assert w.lead("hal@orrco.io")["firstName"] == "Hal"
