"""Two FreshBooks accounts into one Marketo; a backfill through the scheduler, re-run overlapping."""

from __future__ import annotations

import pytest

from airflow_provider_fbmkto.testing import FreshBooksEmulator
from airflow_provider_fbmkto.testing.airflow_stack import AirflowStack
from tests.e2e.conftest import DAGS, World, day, make_world

# A scheduler stack with two backfills and then three whole-run reruns: over the suite's 300 s default on a
# loaded 2-core machine (its own waits are bounded one by one below).
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

TWO_ACCOUNTS = """\
defaults:
  marketo_conn_id: marketo_default
  schedule: "@daily"
  timezone: UTC
  start_date: "2025-01-01"
  retries: 0
accounts:
  - name: acme
    freshbooks_conn_id: freshbooks_acme
    matching:
      rules: [{{domain: bigco.io, company: BigCo Holdings}}]
    segments: {{paid_list_id: {paid}, overdue_list_id: {overdue}}}
  - name: globex
    freshbooks_conn_id: freshbooks_globex
    matching:
      rules: [{{email: zed@zeta.io, company: Zeta Group}}]
"""


def test_two_accounts_write_one_marketo_with_their_own_rules(airflow_home, tmp_path):
    for w in make_world(airflow_home, tmp_path, TWO_ACCOUNTS):
        with FreshBooksEmulator(account_id="GLOBEX1") as fb2:
            w.env["AIRFLOW_CONN_FRESHBOOKS_GLOBEX"] = fb2.conn_json()
            import os

            os.environ["AIRFLOW_CONN_FRESHBOOKS_GLOBEX"] = fb2.conn_json()
            assert w.cli("setup-marketo", "--conn-id", "marketo_default") == 0
            assert w.cli("authorize", "--conn-id", "freshbooks_acme", "--code", w.fb.issue_code()) == 0
            assert w.cli("authorize", "--conn-id", "freshbooks_globex", "--code", fb2.issue_code()) == 0
            ann = w.fb.add_client(fname="Ann", lname="Lee", email="ann@bigco.io")
            w.fb.add_invoice(customerid=ann["id"], create_date=day(5).isoformat(), amount="100.00")
            zed = fb2.add_client(fname="Zed", lname="Ng", email="zed@zeta.io")
            amy = fb2.add_client(fname="Amy", lname="Ng", email="amy@zeta.io")
            fb2.add_invoice(customerid=zed["id"], create_date=day(5).isoformat(), amount="70.00")
            fb2.add_invoice(customerid=amy["id"], create_date=day(5).isoformat(), amount="30.00")

            w.ok(day(4), account="acme")
            w.ok(day(4), account="globex")

            companies = {c["externalCompanyId"]: c for c in w.mkto.companies()}
            # acme: domain rule; globex: e-mail rule for zed, plain domain match for amy.
            assert set(companies) == {"fbmkto:bigco-holdings", "fbmkto:zeta-group", "fbmkto:zeta.io"}
            assert w.lead("zed@zeta.io")["externalCompanyId"] == "fbmkto:zeta-group"
            assert w.lead("amy@zeta.io")["externalCompanyId"] == "fbmkto:zeta.io"
            accounts = {
                w.lead(email)["email"]: {
                    a["value"]
                    for act in w.mkto.activities(w.lead(email)["id"])
                    for a in act["attributes"]
                    if (a.get("apiName") or a.get("name")) == "fbAccountId"
                }
                for email in ("ann@bigco.io", "zed@zeta.io", "amy@zeta.io")
            }
            assert accounts == {"ann@bigco.io": {"ACME01"}, "zed@zeta.io": {"GLOBEX1"}, "amy@zeta.io": {"GLOBEX1"}}
            # acme's lists are configured, globex's are not: only acme's lead can be in them.
            assert w.mkto.list_members(1001) + w.mkto.list_members(1002) in ([], [w.lead("ann@bigco.io")["id"]])
            assert w.duplicates() == 0


def test_backfill_through_the_scheduler_then_overlapping_backfill_and_reruns_write_nothing_twice(world: World):
    client = world.fb.add_client(fname="Ed", lname="Fox", email="ed@foxco.com")
    for n in (6, 5, 4, 3):
        inv = world.fb.add_invoice(customerid=client["id"], create_date=day(n).isoformat(), amount=f"{n}0.00")
        world.fb.add_payment(invoiceid=inv["id"], amount=f"{n}0.00", date=day(n - 1).isoformat())
    stack = AirflowStack(world.home / "stack", DAGS, {k: v for k, v in world.env.items() if k != "AIRFLOW_HOME"})
    with stack:
        stack.migrate()
        stack.start()
        stack.wait_for_dags(["fbmkto_sync__acme"], timeout=180)
        # Unpaused (catchup off): the scheduler runs only the latest interval [day(1), day(0)) by itself.
        stack.airflow("dags", "unpause", "fbmkto_sync__acme")
        stack.wait_for_runs("fbmkto_sync__acme", 1, timeout=180)
        stack.backfill("fbmkto_sync__acme", str(day(6)), str(day(4)), "--max-active-runs", "2")
        runs = stack.wait_for_runs("fbmkto_sync__acme", 4, timeout=300)
        assert [r["state"] for r in runs] == ["success"] * 4
        after_first = sorted(world.activity_keys())
        # A backfill's dates are logical dates = interval starts: windows [day(6), day(5)) .. [day(4), day(3)),
        # plus the latest [day(1), day(0)). The account's scope is now [day(6), day(0)), the gap included
        # (pinned semantics: every fact inside the span its runs covered): invoices of day(6..3), payments
        # dated day(5..2).
        assert len(after_first) == 8
        # A second, wider backfill: only the days not run yet are new runs.
        stack.backfill("fbmkto_sync__acme", str(day(7)), str(day(3)), "--reprocess-behavior", "none")
        runs = stack.wait_for_runs("fbmkto_sync__acme", 6, timeout=300)
        assert all(r["state"] == "success" for r in runs)
    # Whole-run reruns of windows the backfills already wrote (what clearing a run does).
    world.ok(day(5))
    world.ok(day(4))
    keys = sorted(world.activity_keys())
    assert world.duplicates() == 0
    assert set(after_first) <= set(keys)
    # The scope is [day(7), day(0)): nothing was dated on day(7), so the same 8 facts.
    assert len(keys) == 8
