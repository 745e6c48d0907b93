"""Reconcile from Marketo's Lead Changes feed, through both emulators, asserting on Marketo's request log.

Each test loads the emulator's ``seed="demo"`` business into Marketo (extract, map, load), reconciles once in
full, then reconciles again the way the daily run does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_fbmkto.cli import main as fbmkto
from airflow_provider_fbmkto.hooks.freshbooks import FreshBooksHook
from airflow_provider_fbmkto.hooks.marketo import MarketoHook
from airflow_provider_fbmkto.pipeline import reconcile as rc
from airflow_provider_fbmkto.pipeline.context import RunContext
from airflow_provider_fbmkto.pipeline.extract import extract
from airflow_provider_fbmkto.pipeline.loader import Loader
from airflow_provider_fbmkto.pipeline.planner import plan_run
from airflow_provider_fbmkto.state import StateDB
from airflow_provider_fbmkto.sync.config import load_config
from airflow_provider_fbmkto.sync.config_schema import AccountConfig
from airflow_provider_fbmkto.sync.window import Window
from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator
from airflow_provider_fbmkto.testing.marketo import MarketoEmulator

ACCT = "demo"
FB_CONN = "freshbooks_demo"
MK_CONN = "marketo_default"
UTC = timezone.utc
CONFIG = f"""
accounts:
  - name: {ACCT}
    freshbooks_conn_id: {FB_CONN}
    marketo_conn_id: {MK_CONN}
    schedule: "@daily"
    start_date: "2025-01-01"
    segments: {{paid_list_id: 1001, overdue_list_id: 1002}}
"""


@dataclass
class Stack:
    fb: FreshBooksEmulator
    mk: MarketoEmulator
    db: StateDB
    account: AccountConfig
    home: Path

    def ctx(self, run_id: str) -> RunContext:
        now = datetime.now(UTC)
        end = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return RunContext(self.account, run_id, Window(end - timedelta(days=30), end), now)

    def sync(self, run_id: str) -> None:
        """extract, map and load of one run."""
        ctx = self.ctx(run_id)
        staging = self.home / "staging" / run_id
        plan_run(self.db, ctx, staging, extract(FreshBooksHook(FB_CONN, state=self.db), self.db, ctx, staging))
        Loader(MarketoHook(MK_CONN), self.db, ctx).run()

    def reconcile(self, run_id: str, leads: Any = None) -> tuple[dict[str, Any], list[str]]:
        """One reconcile (leads and companies); ``(result, paths of the Marketo calls it made)``."""
        before = len(self.mk.rest_calls())
        ctx = self.ctx(run_id)
        hook = MarketoHook(MK_CONN)
        result = rc.reconcile(hook, self.db, ctx, leads=leads)
        result["companies"] = rc.reconcile_companies(hook, self.db, ctx)
        return result, [c.path for c in self.mk.rest_calls()[before:]]

    def lead(self, email: str) -> dict[str, Any]:
        return next(lead for lead in self.mk.leads() if str(lead["email"]).lower() == email)


@pytest.fixture
def stack(airflow_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Stack]]:
    with ExitStack() as es:

        def make(config: str = CONFIG) -> Stack:
            fb = es.enter_context(FreshBooksEmulator(seed="demo"))
            mk = es.enter_context(
                MarketoEmulator(lists={1001: "Paid", 1002: "Overdue"}, window_seconds=1.0, bulk_step_seconds=0.05)
            )
            monkeypatch.setenv(f"AIRFLOW_CONN_{FB_CONN.upper()}", fb.conn_json())
            monkeypatch.setenv(f"AIRFLOW_CONN_{MK_CONN.upper()}", mk.conn_json())
            assert fbmkto(["authorize", "--conn-id", FB_CONN, "--code", fb.issue_code()]) == 0
            assert fbmkto(["setup-marketo", "--conn-id", MK_CONN]) == 0
            cfg = airflow_env / "fbmkto_accounts.yaml"
            cfg.write_text(config)
            s = Stack(fb, mk, StateDB.from_airflow(), load_config(cfg).account(ACCT), airflow_env)
            s.sync("first")
            return s

        yield make


def test_steady_state_reads_the_feed_once_and_exports_nothing(stack: Callable[..., Stack]) -> None:
    s = stack()
    first, calls = s.reconcile("r1")
    assert first["source"] == "email"  # the first reconcile of a small account compares every client
    assert first["leads_compared"] > 5
    assert "/rest/v1/activities/leadchanges.json" not in calls
    assert calls.count("/rest/v1/activities/pagingtoken.json") == 1  # where the feed starts next time
    second, calls = s.reconcile("r2")
    assert second["source"] == "feed"
    assert second["mismatches"] == {}
    assert len(calls) <= 3, calls
    assert not any("/bulk/" in c for c in calls)
    assert calls.count("/rest/v1/activities/leadchanges.json") == 1
    assert "/rest/v1/leads.json" not in calls  # nothing changed: no lead is read
    assert "/rest/v1/activities/pagingtoken.json" not in calls  # from the stored position
    assert s.db.watermarks.position(ACCT, rc.FEED_POSITION) is not None


def test_a_name_changed_in_marketo_is_picked_up_and_only_that_lead_is_read(stack: Callable[..., Stack]) -> None:
    s = stack()
    s.reconcile("r1")
    s.reconcile("r2")
    victim = sorted(str(lead["email"]).lower() for lead in s.mk.leads())[0]
    lead = s.lead(victim)
    s.mk.edit_lead(int(lead["id"]), {"firstName": "Somebody Else"})  # a person edits it in Marketo
    result, calls = s.reconcile("r3")
    assert result["source"] == "feed"
    assert result["leads_compared"] == 1
    assert result["mismatches"] == {"name_differs": 1}
    assert result["examples"][0]["email"] == victim
    assert result["examples"][0]["marketo"] == "Somebody Else"
    assert calls.count("/rest/v1/leads.json") == 1  # the one changed lead, by id
    assert len(calls) <= 4, calls
    again, _ = s.reconcile("r4")  # reported once, as the export path does: nothing changed since
    assert again["mismatches"] == {}


def test_an_email_changed_in_marketo_leaves_its_client_without_a_lead(stack: Callable[..., Stack]) -> None:
    s = stack()
    s.reconcile("r1")
    victim = sorted(str(lead["email"]).lower() for lead in s.mk.leads())[-1]
    s.mk.edit_lead(int(s.lead(victim)["id"]), {"email": "moved@elsewhere.example"})
    result, _ = s.reconcile("r2")
    assert result["mismatches"] == {"only_in_freshbooks": 1}
    assert result["examples"][0]["email"] == victim


def test_a_stored_position_marketo_refuses_is_replaced_by_one_from_the_last_reconcile(
    stack: Callable[..., Stack],
) -> None:
    s = stack()
    s.reconcile("r1")
    s.reconcile("r2")
    s.db.watermarks.set_position(ACCT, rc.FEED_POSITION, "NOTATOKEN")
    result, calls = s.reconcile("r3")
    assert result["source"] == "feed"
    assert calls.count("/rest/v1/activities/leadchanges.json") == 2
    assert calls.count("/rest/v1/activities/pagingtoken.json") == 1
    assert s.db.watermarks.position(ACCT, rc.FEED_POSITION)[0] != "NOTATOKEN"  # type: ignore[index]


def test_a_gap_longer_than_the_feed_keeps_falls_back_to_the_bulk_export(stack: Callable[..., Stack]) -> None:
    s = stack(CONFIG + "    reconcile: {bulk_threshold: 1}\n")
    ctx = s.ctx("r0")
    assert rc.needs_export(s.db, ctx)  # the first reconcile of a large account
    s.db.watermarks.set(ACCT, rc.WATERMARK, ctx.now - timedelta(days=5))
    assert not rc.needs_export(s.db, ctx)
    assert rc.from_feed(s.db, ctx)
    s.db.watermarks.set(ACCT, rc.WATERMARK, ctx.now - rc.FEED_RETENTION - timedelta(days=1))
    assert rc.needs_export(s.db, ctx)
    # What the operator then does: export the leads updated since (at most 31 days), compare the file.
    hook = MarketoHook(MK_CONN)
    since, until = rc.export_window(s.db, ctx)
    export_id = hook.create_lead_export(list(rc.EXPORT_FIELDS), since, until)
    hook.enqueue_export(export_id)
    deadline = time.monotonic() + 30
    while hook.export_status(export_id).state.value != "Completed":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    result, calls = s.reconcile("r1", leads=hook.download_export(export_id))
    assert result["source"] == "export"
    assert result["leads_compared"] > 5
    assert "/rest/v1/activities/leadchanges.json" not in calls
    assert calls.count("/rest/v1/activities/pagingtoken.json") == 1  # the feed's position from now on
    follow, calls = s.reconcile("r2")
    assert follow["source"] == "feed"
    assert calls == ["/rest/v1/activities/leadchanges.json", "/rest/v1/companies.json"]


def test_company_names_are_read_back_by_key_and_fixed(stack: Callable[..., Stack]) -> None:
    s = stack(CONFIG + "    reconcile: {fix_marketo: true}\n")
    companies = s.mk.companies()
    assert companies, "the demo business should have companies"
    s.reconcile("r1")
    target = sorted(companies, key=lambda c: str(c["externalCompanyId"]))[0]
    s.mk.edit_company(str(target["externalCompanyId"]), {"company": "Renamed In Marketo"})
    result, calls = s.reconcile("r2")
    assert result["companies"]["compared"] == len(companies)
    assert result["companies"]["mismatches"] == {"company_name_differs": 1}
    assert result["companies"]["fixed"] == 1
    assert calls.count("/rest/v1/companies.json") == 2  # one read (≤300 keys), one fix
    fixed = next(c for c in s.mk.companies() if c["externalCompanyId"] == target["externalCompanyId"])
    assert fixed["company"] == target["company"]
