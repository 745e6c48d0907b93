"""The status page (plugin app): which skipped rows a later run retries by itself, the account's budget share and
what the last run's stored report says (its failures, a stop for the share)."""

from __future__ import annotations

import re

from airflow_provider_fbmkto.pipeline.reasons import heals_by_itself, no_lead
from tests.ui.conftest import Seeded, add_rows, cell
from tests.ui.test_ui_status_app import client_for, get_page

WAITING = no_lead("zed@initech.io", "the account is update-only; waiting for the person")


def next_steps(page: str) -> dict[str, tuple[str, str]]:
    """ledger key -> (data-retry, text) of the failures table."""
    rows = re.findall(
        r'data-testid="failure-row"><td>[^<]*</td><td><code>([^<]+)</code>'
        r'.*?data-testid="next-step" data-retry="(\w+)">([^<]*)<',
        page,
        flags=re.S,
    )
    return {key: (retry, text) for key, retry, text in rows}


def test_skipped_rows_say_whether_a_later_run_retries_them_and_how_many_retries_are_left(seeded: Seeded):
    def refused_again(*emails: str) -> None:  # a later run retried them; Marketo still has no such person
        seeded.db.skip_retries.requeue("acme", heals_by_itself, limit=5)
        add_rows(seeded.db, "acme", "later", [(f"lead:acme:{e}", "lead", "skipped", WAITING) for e in emails])

    add_rows(seeded.db, "acme", "scheduled__2", [("lead:acme:amy@initech.io", "lead", "skipped", WAITING)])
    for _ in range(3):
        refused_again("amy@initech.io")
    add_rows(seeded.db, "acme", "scheduled__3", [("lead:acme:zed@initech.io", "lead", "skipped", WAITING)])
    for _ in range(2):
        refused_again("amy@initech.io", "zed@initech.io")
    assert seeded.db.skip_retries.counts(["lead:acme:amy@initech.io", "lead:acme:zed@initech.io"]) == {
        "lead:acme:amy@initech.io": 5,
        "lead:acme:zed@initech.io": 2,
    }

    steps = next_steps(get_page(client_for(seeded), query="?account=acme"))
    assert steps["lead:acme:zed@initech.io"] == (
        "auto",
        "retried automatically by the next run (3 of 5 automatic retries left)",
    )
    assert steps["lead:acme:amy@initech.io"] == ("replay", "waits for a replay (its 5 automatic retries are used up)")
    # A data problem (the record must change) waits for a replay at once; a failed row is simply sent again.
    assert steps["activity:acme:4"] == ("replay", "waits for a replay (fix the cause first)")
    assert steps["company:acme:bigco"] == ("auto", "the next run sends it again")


def test_the_accounts_share_of_the_budget_and_the_last_reports_stop_are_shown(seeded: Seeded):
    seeded.config.write_text(
        seeded.config.read_text().replace("  - name: globex", "    daily_budget_share: 0.5\n  - name: globex")
    )
    seeded.db.budget.spend("123-abc-456.mktorest.com", 12, account="acme")
    seeded.db.runs.start("acme", "scheduled__9")
    seeded.db.runs.finish(
        "acme",
        "scheduled__9",
        status="success",
        summary={
            "this_run": {"activity": {"written": 2}},
            "failures": [{"key": "activity:acme:4", "status": "skipped"}],
            "stopped": {"reason": "daily_budget_share", "message": "…", "rows_waiting": 7},
        },
    )
    page = get_page(client_for(seeded))
    # acme: 12 of the instance's 49 calls are its own; its share is half of the 900 usable.
    assert (cell(page, "budget-acme-used"), cell(page, "budget-acme-limit")) == ("49", "900")
    assert (cell(page, "budget-acme-account-used"), cell(page, "budget-acme-account-limit")) == ("12", "450")
    assert cell(page, "budget-globex-account-used") == "0"
    assert 'data-testid="budget-globex-account-limit"' not in page  # no share: only its count
    assert "load stopped at its daily budget share; 7 rows wait for the next run" in cell(page, "stopped-acme")
    assert cell(page, "report-acme-failures") == "1"
    assert 'data-testid="stopped-globex"' not in page
