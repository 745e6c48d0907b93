"""Real DAG runs: two accounts share one Marketo instance's small daily budget; acme's ``daily_budget_share`` stops
its load cleanly (rows stay pending, the run succeeds, the report stored in the state DB says so), globex still
sends, and after Marketo's midnight acme's next run delivers what waited. Skipped rows retried by later runs."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from sqlalchemy import update

from airflow_provider_fbmkto.hooks.marketo import MarketoHook
from airflow_provider_fbmkto.state import StateDB, marketo_day
from airflow_provider_fbmkto.state.budget import AccountCallDay
from airflow_provider_fbmkto.state.models import CallBudgetDay
from airflow_provider_fbmkto.testing import FreshBooksEmulator
from tests.e2e.conftest import day, make_world

pytestmark = pytest.mark.e2e

SHARED = """\
defaults:
  marketo_conn_id: marketo_default
  schedule: "@daily"
  timezone: UTC
  start_date: "2025-01-01"
  retries: 0
accounts:
  - name: acme
    freshbooks_conn_id: freshbooks_acme
    daily_budget_share: 0.5
  - name: globex
    freshbooks_conn_id: freshbooks_globex
"""


def _midnight_in_chicago(db: StateDB, mkto: object) -> None:
    """Marketo's day ends: the state DB's counts of today become yesterday's; the emulator's day starts afresh."""
    today = marketo_day()
    with db.write_tx() as conn:
        for table in (CallBudgetDay, AccountCallDay):
            conn.execute(update(table).where(table.day == today).values(day=today - timedelta(days=1)))
    mkto.model.limits.reset()  # type: ignore[attr-defined]


def test_an_accounts_share_stops_its_load_cleanly_and_the_next_day_continues(airflow_home, tmp_path):
    for w in make_world(airflow_home, tmp_path, SHARED):
        with FreshBooksEmulator(account_id="GLOBEX1") as fb2:
            w.env["AIRFLOW_CONN_FRESHBOOKS_GLOBEX"] = os.environ["AIRFLOW_CONN_FRESHBOOKS_GLOBEX"] = fb2.conn_json()
            assert w.cli("setup-marketo", "--conn-id", "marketo_default") == 0
            assert w.cli("authorize", "--conn-id", "freshbooks_acme", "--code", w.fb.issue_code()) == 0
            assert w.cli("authorize", "--conn-id", "freshbooks_globex", "--code", fb2.issue_code()) == 0
            for n, email in enumerate(("ann@bigco.io", "bob@bigco.io", "cat@initech.io")):
                client = w.fb.add_client(fname="X", lname=f"Y{n}", email=email)
                w.fb.add_invoice(customerid=client["id"], create_date=day(5).isoformat(), amount="10.00")
            zed = fb2.add_client(fname="Zed", lname="Ng", email="zed@zeta.io")
            fb2.add_invoice(customerid=zed["id"], create_date=day(5).isoformat(), amount="70.00")

            # A small budget for the instance today; acme's backfill earlier today spent nearly all its half.
            db = StateDB.from_airflow()
            instance = MarketoHook().instance
            budget = db.budget.used(instance) + 200
            w.env["AIRFLOW_CONN_MARKETO_DEFAULT"] = w.mkto.conn_json(daily_budget=budget)
            share = int(0.5 * budget)  # others' calls: none (every call so far is this provider's own)
            db.budget.spend(instance, share - 2, account="acme")

            out = w.ok(day(4), account="acme")  # the run succeeds: stopping for the share is by design
            assert "load stopped: account 'acme' has spent its daily_budget_share" in out
            assert w.mkto.leads() == []  # nothing of acme's went out
            run = db.runs.recent("acme", limit=1)[0]
            assert run.summary is not None
            stopped = run.summary["stopped"]
            assert stopped["reason"] == "daily_budget_share"
            assert stopped["rows_waiting"] > 0
            budget_report = run.summary["marketo_budget"]
            assert budget_report["account_share"] == 0.5
            assert budget_report["account_limit"] == share
            # the load stopped at its share; reconcile's reads count for the account too (they are not capped)
            assert share - 2 <= budget_report["account_used"] <= share + 2
            assert budget_report["usable"] == budget
            counts = db.ledger.counts("acme")
            assert counts.get(("lead", "pending")) == 3
            assert not any(s in ("failed", "skipped", "in_flight") for _k, s in counts)
            # The CLI reads the same report from the state DB.
            assert w.cli("ledger", "report", "--account", "acme") == 0

            # globex has no share of its own: the instance's remaining budget is its to use.
            w.ok(day(4), account="globex")
            assert [lead["email"] for lead in w.mkto.leads()] == ["zed@zeta.io"]
            assert db.budget.used(instance) <= budget

            # Marketo's midnight: acme's next run sends what waited, and says nothing of a stop.
            _midnight_in_chicago(db, w.mkto)
            out = w.ok(day(3), account="acme")
            assert "load stopped" not in out
            assert {lead["email"] for lead in w.mkto.leads()} == {
                "zed@zeta.io",
                "ann@bigco.io",
                "bob@bigco.io",
                "cat@initech.io",
            }
            assert db.runs.recent("acme", limit=1)[0].summary["stopped"] is None  # type: ignore[index]
            assert not [k for k, s in db.ledger.counts("acme") if s == "pending"]
            assert w.duplicates() == 0
