"""A webhook event whose invoice FreshBooks cannot give (404) does not block the events DAG or the daily DAG:
it is read again by the next runs, marked failed after three failed reads with its reason (report, state DB),
and every other event is synced meanwhile."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from airflow_provider_fbmkto.pipeline.extract import EVENT_ATTEMPTS
from airflow_provider_fbmkto.plugins.webhooks import build_router
from airflow_provider_fbmkto.state import StateDB
from airflow_provider_fbmkto.testing.server import ThreadedServer
from tests.e2e.conftest import BASE_CONFIG, World, day, make_world

pytestmark = pytest.mark.e2e

WEBHOOK_CONFIG = BASE_CONFIG + "    webhooks: true\n"
MISSING_INVOICE = 987654


def _events_run(w: World) -> str:
    """``airflow dags test fbmkto_events__acme``: its sensor finds the pending events, then extract … report."""
    proc = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", "fbmkto_events__acme", day(0).isoformat()],
        env=w.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "state=success" in out, out[-6000:]
    return out


def _latest_report(home: Path) -> dict[str, Any]:
    reports = sorted((home / "fbmkto" / "reports" / "acme").glob("*.json"), key=lambda p: p.stat().st_mtime)
    report: dict[str, Any] = json.loads(reports[-1].read_text())
    return report


def test_an_event_whose_invoice_is_gone_is_retried_then_failed_and_blocks_nothing(
    airflow_home: Path, tmp_path: Path
) -> None:
    assert EVENT_ATTEMPTS == 3
    for w in make_world(airflow_home, tmp_path, WEBHOOK_CONFIG):
        assert w.cli("setup-marketo", "--conn-id", "marketo_default") == 0
        assert w.cli("authorize", "--conn-id", "freshbooks_acme", "--code", w.fb.issue_code()) == 0
        receiver = FastAPI()
        receiver.include_router(build_router())
        with ThreadedServer(receiver) as srv:
            url = f"{srv.url}/webhooks/freshbooks/acme"
            assert (
                w.cli("webhooks", "register", "--conn-id", "freshbooks_acme", "--url", url, "--events", "invoice") == 0
            )
            ivy = w.fb.add_client(fname="Ivy", lname="Park", email="ivy@parkco.io")
            ned = w.fb.add_client(fname="Ned", lname="Park", email="ned@parkco.io")
            first = w.fb.add_invoice(customerid=ivy["id"], create_date=day(5).isoformat(), amount="42.00", status=1)
            w.fb.send_invoice(first["id"])
            # FreshBooks tells of an invoice it then cannot give: GET invoice answers 404.
            w.fb.webhooks.notify("invoice.sendByEmail", MISSING_INVOICE)
            assert w.fb.wait_for_webhooks(10)
            db = StateDB.from_airflow()
            sent = [e.object_id for e in db.events.pending("acme") if e.name == "invoice.sendByEmail"]
            assert sent == [str(first["id"]), str(MISSING_INVOICE)]

            # Run 1 (events DAG): the good event is synced, the bad one is counted and left for the next run.
            out = _events_run(w)
            assert f"invoice.sendByEmail {MISSING_INVOICE}" in out
            assert f"could not be read (attempt 1 of {EVENT_ATTEMPTS}), the next run tries again" in out
            assert [a[1] for a in w.timeline("ivy@parkco.io")] == ["fbInvoiceSent"]
            (retrying,) = db.events.failures("acme")
            assert (retrying.object_id, retrying.attempts, retrying.failed) == (str(MISSING_INVOICE), 1, False)
            assert "HTTP 404" in retrying.reason
            report = _latest_report(w.home)
            assert [e["object_id"] for e in report["webhook_events"]["retrying"]] == [str(MISSING_INVOICE)]

            # Another invoice is e-mailed meanwhile: the daily DAG syncs it although the bad event is still there.
            second = w.fb.add_invoice(customerid=ned["id"], create_date=day(5).isoformat(), amount="7.00", status=1)
            w.fb.send_invoice(second["id"])
            assert w.fb.wait_for_webhooks(10)
            w.ok(day(1))  # run 2
            assert [a[1] for a in w.timeline("ned@parkco.io")] == ["fbInvoiceSent"]
            assert db.events.failures("acme")[0].attempts == 2

            out = w.ok(day(0))  # run 3: the third failed read marks it failed
        assert "marked failed after 3 failed read(s), no run reads it again" in out
        (failed,) = db.events.failures("acme", failed=True)
        assert (failed.object_id, failed.attempts) == (str(MISSING_INVOICE), 3)
        assert "HTTP 404" in failed.reason
        assert db.events.pending("acme") == []
        assert db.events.has_pending("acme") is False  # the events DAG's sensor waits again
        report = _latest_report(w.home)
        (shown,) = report["webhook_events"]["failed"]
        assert (shown["object_id"], shown["attempts"]) == (str(MISSING_INVOICE), 3)
        assert "HTTP 404" in shown["reason"]
        # Nothing was sent twice, and the other events were consumed.
        assert len(w.timeline("ivy@parkco.io")) == 1
        assert len(w.timeline("ned@parkco.io")) == 1
        assert w.duplicates() == 0
