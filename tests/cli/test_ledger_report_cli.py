"""``fbmkto ledger report``: the run's report as stored in the state DB (not a worker's file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_fbmkto.cli import main as fbmkto
from airflow_provider_fbmkto.state import StateDB

REPORT = {
    "account": "acme",
    "run_id": "scheduled__2",
    "window": {"start": "2025-06-01T00:00:00+00:00", "end": "2025-06-02T00:00:00+00:00"},
    "dry_run": False,
    "this_run": {"activity": {"written": 4, "skipped": 1}},
    "failures": [{"key": "invoice_sent:acme:9", "status": "skipped", "reason": "1013 draft"}],
    "marketo_budget": {
        "used_today": 120,
        "daily_budget": 1000,
        "budget_reserve": 100,
        "other_integrations": 300,
        "usable": 600,
        "left": 480,
        "account_share": 0.5,
        "account_limit": 300,
        "account_used": 296,
    },
    "stopped": {"reason": "daily_budget_share", "message": "account 'acme' reached its share", "rows_waiting": 12},
}


def test_report_reads_the_latest_stored_report(airflow_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = StateDB.from_airflow()
    db.runs.start("acme", "scheduled__1")
    db.runs.finish("acme", "scheduled__1", status="success", summary={**REPORT, "run_id": "scheduled__1"})
    db.runs.start("acme", "scheduled__2")
    db.runs.finish("acme", "scheduled__2", status="success", summary=REPORT)
    db.runs.start("acme", "manual__3")  # still running: no report yet, the latest stored one is shown

    assert fbmkto(["ledger", "report", "--account", "acme"]) == 0
    out = capsys.readouterr().out
    assert "Marketo calls today: 120 of 600 usable (daily_budget 1000 - budget_reserve 100 - 300 calls of other " in out
    assert "this account's calls today: 296 of its share 300 (daily_budget_share 0.5)" in out
    assert "load stopped: account 'acme' reached its share; 12 rows wait for the next run" in out
    assert "skipped  invoice_sent:acme:9: 1013 draft" in out

    assert fbmkto(["ledger", "report", "--account", "acme", "--run-id", "scheduled__1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == "scheduled__1"


def test_report_of_an_unknown_run_says_where_reports_come_from(
    airflow_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fbmkto(["ledger", "report", "--account", "acme", "--run-id", "nope"]) == 1
    out = capsys.readouterr().out
    assert "no report of run 'nope' of account 'acme' in the state DB" in out
