"""Accounts that collide: two FreshBooks accounts with one client e-mail and one company, into one Marketo.

By default the second account's writes for the first account's person and company are held ("owned by account
acme") and reported, never sent; with ``marketo.leads.shared`` and a shared company rule in both, they go through
(the shared person is only updated, never created twice). Real DAG runs against the emulators.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_fbmkto.state import StateDB
from airflow_provider_fbmkto.testing import FreshBooksEmulator
from tests.e2e.conftest import World, day, make_world

pytestmark = pytest.mark.e2e

HELD = """\
defaults:
  marketo_conn_id: marketo_default
  schedule: "@daily"
  timezone: UTC
  start_date: "2025-01-01"
  retries: 0
  segments: {{paid_list_id: {paid}, overdue_list_id: {overdue}}}
accounts:
  - name: acme
    freshbooks_conn_id: freshbooks_acme
  - name: globex
    freshbooks_conn_id: freshbooks_globex
"""

SHARED = """\
defaults:
  marketo_conn_id: marketo_default
  schedule: "@daily"
  timezone: UTC
  start_date: "2025-01-01"
  retries: 0
  segments: {{paid_list_id: {paid}, overdue_list_id: {overdue}}}
  marketo: {{leads: {{shared: true}}}}
  matching:
    rules: [{{domain: initech.com, company: Initech, shared: true}}]
accounts:
  - name: acme
    freshbooks_conn_id: freshbooks_acme
  - name: globex
    freshbooks_conn_id: freshbooks_globex
"""


def _two_accounts(airflow_home: Path, tmp_path: Path, config: str) -> Iterator[tuple[World, dict[str, Any]]]:
    for w in make_world(airflow_home, tmp_path, config):
        with FreshBooksEmulator(account_id="GLOBEX1") as fb2:
            w.env["AIRFLOW_CONN_FRESHBOOKS_GLOBEX"] = os.environ["AIRFLOW_CONN_FRESHBOOKS_GLOBEX"] = fb2.conn_json()
            assert w.cli("setup-marketo", "--conn-id", "marketo_default") == 0
            assert w.cli("authorize", "--conn-id", "freshbooks_acme", "--code", w.fb.issue_code()) == 0
            assert w.cli("authorize", "--conn-id", "freshbooks_globex", "--code", fb2.issue_code()) == 0
            # ann is a client of both accounts; initech.com is a company of both (by domain, or a shared rule)
            ann = w.fb.add_client(fname="Ann", lname="Lee", email="ann@bigco.io")
            invoice = w.fb.add_invoice(customerid=ann["id"], create_date=day(5).isoformat(), amount="100.00")
            cy = w.fb.add_client(fname="Cy", lname="Ito", email="cy@initech.com", organization="Initech")
            w.fb.add_invoice(customerid=cy["id"], create_date=day(5).isoformat(), amount="40.00")
            ann2 = fb2.add_client(fname="Ann", lname="Lee", email="ann@bigco.io")
            fb2.add_invoice(customerid=ann2["id"], create_date=day(5).isoformat(), amount="70.00")
            dee = fb2.add_client(fname="Dee", lname="Ng", email="dee@initech.com", organization="Initech")
            fb2.add_invoice(customerid=dee["id"], create_date=day(5).isoformat(), amount="30.00")
            yield w, invoice


def _inputs(w: World, path: str) -> list[tuple[str, dict[str, Any]]]:
    """``(action, record)`` of every record the emulator was sent on ``path``."""
    return [
        (str(c.body.get("action")), rec)
        for c in w.mkto.rest_calls()
        if c.path == path and c.method == "POST" and isinstance(c.body, dict)
        for rec in c.body.get("input") or []
    ]


def _account_ids(w: World, email: str) -> set[str]:
    return {
        a["value"]
        for act in w.mkto.activities(w.lead(email)["id"])
        for a in act["attributes"]
        if (a.get("apiName") or a.get("name")) == "fbAccountId"
    }


def _state(tmp_path: Path) -> StateDB:
    return StateDB(f"sqlite:///{tmp_path / 'state.db'}")


def test_the_second_accounts_writes_for_an_owned_person_and_company_are_held_and_reported(airflow_home, tmp_path):
    for w, invoice in _two_accounts(airflow_home, tmp_path, HELD):
        w.ok(day(4), account="acme")
        out = w.ok(day(4), account="globex")

        assert Counter(lead["email"] for lead in w.mkto.leads())["ann@bigco.io"] == 1  # one person, no duplicate
        assert _account_ids(w, "ann@bigco.io") == {"ACME01"}  # no globex activity on acme's person
        lead_writes = [rec["email"] for _, rec in _inputs(w, "/rest/v1/leads.json")]
        assert Counter(lead_writes) == {"ann@bigco.io": 1, "cy@initech.com": 1, "dee@initech.com": 1}
        company_writes = [rec["externalCompanyId"] for _, rec in _inputs(w, "/rest/v1/companies.json")]
        assert Counter(company_writes)["fbmkto:initech.com"] == 1  # acme's; globex's is held
        assert _account_ids(w, "dee@initech.com") == {"GLOBEX1"}  # globex's own person goes through

        db = _state(tmp_path)
        held = {r.key: r.last_error or "" for r in db.ledger.failures("globex", limit=100)}
        assert set(held) >= {"lead:globex:ann@bigco.io", "company:globex:initech.com", "list:globex:ann@bigco.io"}
        assert any(k.startswith("invoice_sent:globex:") for k in held)
        for key in held:
            assert held[key].startswith("owned by account acme: "), (key, held[key])
        assert "set `marketo.leads.shared: true` in both" in held["lead:globex:ann@bigco.io"]
        assert "matching rule with `shared: true` in both" in held["company:globex:initech.com"]
        assert db.ledger.failures("acme", limit=100) == []
        assert {o.account for o in db.owners.owned()} == {"acme", "globex"}
        acme_owns = {(o.kind, o.key) for o in db.owners.owned("acme")}
        assert acme_owns >= {("lead", "ann@bigco.io"), ("company", "initech.com")}
        assert "owned by account acme" in out  # the report's table in the run's log

        # a second run of acme still writes its person; globex's held rows stay held, nothing sent for them
        w.fb.add_payment(invoiceid=invoice["id"], amount="100.00", date=day(3).isoformat())
        w.ok(day(3), account="acme")
        w.ok(day(3), account="globex")
        assert _account_ids(w, "ann@bigco.io") == {"ACME01"}
        assert w.mkto.list_members(1001) == [w.lead("ann@bigco.io")["id"]]  # paid in acme: acme's list write
        assert Counter(lead["email"] for lead in w.mkto.leads())["ann@bigco.io"] == 1


def test_with_shared_leads_and_a_shared_company_rule_both_accounts_write_one_person(airflow_home, tmp_path):
    for w, _invoice in _two_accounts(airflow_home, tmp_path, SHARED):
        w.ok(day(4), account="acme")
        w.ok(day(4), account="globex")

        assert Counter(lead["email"] for lead in w.mkto.leads())["ann@bigco.io"] == 1  # still one person
        assert _account_ids(w, "ann@bigco.io") == {"ACME01", "GLOBEX1"}
        writes = [(action, rec["email"]) for action, rec in _inputs(w, "/rest/v1/leads.json")]
        # the owner creates; the sharing account only updates (so it can never create a second person)
        assert ("updateOnly", "ann@bigco.io") in writes
        assert writes.count(("createOrUpdate", "ann@bigco.io")) == 1
        company_writes = [rec["externalCompanyId"] for _, rec in _inputs(w, "/rest/v1/companies.json")]
        assert Counter(company_writes)["fbmkto:initech"] == 2  # both accounts write the shared company
        assert [c["externalCompanyId"] for c in w.mkto.companies()].count("fbmkto:initech") == 1
        # ann's company bigco.io is matched by plain domain in both accounts: no rule shares it, so it stays held
        (held,) = _state(tmp_path).ledger.failures("globex", limit=100)
        assert held.key == "company:globex:bigco.io"
        assert (held.last_error or "").startswith("owned by account acme: company fbmkto:bigco.io was first written")
