"""The by-date pass of the activity planner (pipeline/planner_facts.py) over a mirror: which facts of a span it
plans, each invoice read once whether it was created in the span or only falls due in it."""

from __future__ import annotations

from datetime import date, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from airflow_provider_fbmkto.pipeline.context import RunContext
from airflow_provider_fbmkto.pipeline.planner_facts import FactPlanner
from airflow_provider_fbmkto.state import FreshBooksMirror, StateDB
from airflow_provider_fbmkto.sync.config import load_config
from airflow_provider_fbmkto.sync.keys import invoice_overdue_key, invoice_sent_key, payment_received_key
from airflow_provider_fbmkto.sync.plan import MappingContext, Skipped
from airflow_provider_fbmkto.sync.records import VisState
from airflow_provider_fbmkto.sync.window import Window, start_of_day
from tests.pipeline.test_mirror import client, invoice, payment

ACCT = "acme"
TZ = ZoneInfo("America/New_York")
CONFIG = f"""
accounts:
  - name: {ACCT}
    freshbooks_conn_id: freshbooks_acme
    marketo_conn_id: marketo_default
    schedule: "@daily"
    start_date: "2025-01-01"
    timezone: America/New_York
"""
#: the span planned: March 2025 in the account's time zone
FIRST, STOP = date(2025, 3, 1), date(2025, 4, 1)


@pytest.fixture
def planned(state_db: StateDB, tmp_path: Path) -> list[str]:
    """The activity keys the by-date pass plans for March, over a mirror of invoices around it."""
    mirror = FreshBooksMirror(state_db)
    mirror.upsert(ACCT, [client(1)])
    mirror.upsert(
        ACCT,
        [
            invoice(10, 1, created=date(2025, 3, 5), due=date(2025, 3, 20)),  # sent and overdue in March
            invoice(11, 1, created=date(2025, 3, 5), due=date(2025, 4, 20)),  # sent in March, overdue later
            invoice(12, 1, created=date(2025, 1, 10), due=date(2025, 3, 10)),  # sent earlier, overdue in March
            invoice(13, 1, created=date(2025, 1, 10), due=date(2025, 2, 28)),  # overdue on March 1st
            invoice(14, 1, created=date(2025, 1, 10), due=date(2025, 2, 27)),  # overdue in February
            invoice(15, 1, created=date(2025, 4, 2), due=date(2025, 3, 15)),  # back-dated due: overdue in March
            invoice(16, 1, created=date(2025, 1, 10), due=date(2025, 3, 12), outstanding="0.00"),  # paid
            invoice(17, 1, created=date(2025, 1, 10), due=date(2025, 3, 12), vis=VisState.DELETED),
            invoice(18, 1, created=date(2025, 3, 31), due=date(2025, 3, 31)),  # overdue on April 1st: later
        ],
    )
    mirror.upsert(ACCT, [payment(20, 11, 1, on=date(2025, 3, 7)), payment(21, 11, 1, on=date(2025, 4, 1))])
    (tmp_path / "accounts.yaml").write_text(CONFIG)
    account = load_config(tmp_path / "accounts.yaml").account(ACCT)
    span = Window(start_of_day(FIRST, TZ), start_of_day(STOP, TZ))
    now = start_of_day(STOP, TZ) + timedelta(hours=6)
    ctx = RunContext(account, "run", span, now.astimezone(timezone.utc))
    skipped: list[Skipped] = []
    facts = FactPlanner(mirror, ctx, MappingContext(ACCT, "fb1", TZ), skipped.extend)
    keys = [a.key for batch in facts.by_date([span]) for a in batch]
    assert skipped == []
    return keys


def test_plans_each_fact_of_the_span_once(planned: list[str]) -> None:
    assert sorted(planned) == sorted(
        [
            invoice_sent_key(ACCT, 10),
            invoice_sent_key(ACCT, 11),
            invoice_sent_key(ACCT, 18),
            invoice_overdue_key(ACCT, 10, date(2025, 3, 20)),
            invoice_overdue_key(ACCT, 12, date(2025, 3, 10)),
            invoice_overdue_key(ACCT, 13, date(2025, 2, 28)),
            invoice_overdue_key(ACCT, 15, date(2025, 3, 15)),
            payment_received_key(ACCT, 20),
        ]
    )
