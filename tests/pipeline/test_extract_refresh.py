"""Extract keeps the mirror's invoices current whether or not a payment bumps its invoice's ``updated``.

FreshBooks does not document it, so each test runs against the emulator both ways. Real extract and map
(the planner) over a real state DB; what is asserted is what the emulator was asked and what the ledger
plans for each lead (``fbPaymentStatus``, balance, the segment list change). Dates are pinned.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from airflow_provider_fbmkto.cli import main as fbmkto
from airflow_provider_fbmkto.hooks.freshbooks import FreshBooksHook
from airflow_provider_fbmkto.hooks.marketo_limits import reset_process_state
from airflow_provider_fbmkto.pipeline import planner
from airflow_provider_fbmkto.pipeline.context import RunContext
from airflow_provider_fbmkto.pipeline.extract import FILES, extract
from airflow_provider_fbmkto.state import StateDB
from airflow_provider_fbmkto.sync.codec import loads_line
from airflow_provider_fbmkto.sync.config import load_config
from airflow_provider_fbmkto.sync.records import Invoice
from airflow_provider_fbmkto.sync.window import Window
from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator

UTC = timezone.utc
ACCT, FB_CONN = "acme", "freshbooks_acme"
PAID, OVERDUE = 1001, 1002
T0 = datetime(2025, 6, 2, 16, 0, tzinfo=UTC)  # 12:00 US/Eastern
CONFIG = f"""
accounts:
  - name: {ACCT}
    freshbooks_conn_id: {FB_CONN}
    marketo_conn_id: marketo_default
    schedule: "@daily"
    start_date: "2025-01-01"
    segments: {{paid_list_id: {PAID}, overdue_list_id: {OVERDUE}}}
"""


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Books:
    fb: FreshBooksEmulator
    clock: Clock
    db: StateDB
    home: Path
    config: Path

    def run(self, run_id: str) -> dict[str, Any]:
        """Extract and map one daily run an hour after the emulator's clock; returns extract's XCom."""
        self.clock.now += timedelta(hours=1)
        now = self.clock.now
        ctx = RunContext(load_config(self.config).account(ACCT), run_id, Window(now - timedelta(days=1), now), now)
        staging = self.home / "staging" / run_id
        extracted = extract(FreshBooksHook(FB_CONN, state=self.db), self.db, ctx, staging)
        planner.plan_run(self.db, ctx, staging, extracted)
        return extracted

    def lead(self, email: str) -> tuple[str, float]:
        row = self.db.ledger.get(f"lead:{ACCT}:{email}")
        assert row is not None, email
        return row.payload["fbPaymentStatus"], float(row.payload["fbOutstandingBalance"])

    def lists(self, email: str) -> tuple[list[int], list[int]]:
        row = self.db.ledger.get(f"list:{ACCT}:{email}")
        assert row is not None, email
        return row.payload["add"], row.payload["remove"]


@pytest.fixture(params=[True, False], ids=["touches-invoice", "leaves-invoice-alone"])
def books(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Books]:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("FBMKTO_FERNET_KEY", Fernet.generate_key().decode())
    reset_process_state()
    clock = Clock()
    with FreshBooksEmulator(clock=clock, payment_touches_invoice=request.param) as fb:
        monkeypatch.setenv(f"AIRFLOW_CONN_{FB_CONN.upper()}", fb.conn_json())
        assert fbmkto(["authorize", "--conn-id", FB_CONN, "--code", fb.issue_code()]) == 0
        config = tmp_path / "accounts.yaml"
        config.write_text(CONFIG)
        yield Books(fb, clock, StateDB.from_airflow(), tmp_path, config)
    reset_process_state()


def _refresh_calls(fb: FreshBooksEmulator, since: int) -> list[list[str]]:
    return [c.query["search[invoiceids][]"] for c in fb.calls[since:] if "search[invoiceids][]" in c.query]


def test_paid_partial_and_deleted_payments_reach_the_leads_either_way(books: Books) -> None:
    fb = books.fb
    cat = fb.add_client(fname="Cat", email="cat@example.com")
    dan = fb.add_client(fname="Dan", email="dan@example.com")
    eve = fb.add_client(fname="Eve", email="eve@example.com")
    late = fb.add_invoice(customerid=cat["id"], create_date="2025-05-01", due_offset_days=14, amount="250.00")
    open_ = fb.add_invoice(customerid=dan["id"], create_date="2025-05-25", due_offset_days=30, amount="100.00")
    settled = fb.add_invoice(customerid=eve["id"], create_date="2025-04-20", due_offset_days=30, amount="80.00")
    eve_pay = fb.add_payment(invoiceid=settled["id"], amount="80.00", date="2025-05-28")
    books.clock.now += timedelta(hours=6)  # the invoices' `updated` is well before the next run's re-read overlap
    first = books.run("day1")
    assert first["counts"]["invoice_refreshed"] == 0  # a first run pulls every invoice anyway
    assert [books.lead(e) for e in ("cat@example.com", "dan@example.com", "eve@example.com")] == [
        ("overdue", 250.0),
        ("current", 100.0),
        ("paid", 0.0),
    ]

    # The next day: Cat pays up, Dan pays part, Eve's payment is deleted (her invoice, due 05-20, is open again).
    books.clock.now += timedelta(days=1)
    fb.add_payment(invoiceid=late["id"], amount="250.00", date="2025-06-03")
    fb.add_payment(invoiceid=open_["id"], amount="40.00", date="2025-06-03")
    fb.delete("payment", eve_pay["id"])
    calls_before = len(fb.calls)
    second = books.run("day2")

    assert [books.lead(e) for e in ("cat@example.com", "dan@example.com", "eve@example.com")] == [
        ("paid", 0.0),
        ("partial", 60.0),
        ("overdue", 80.0),
    ]
    assert books.lists("cat@example.com") == ([PAID], [OVERDUE])
    assert books.lists("dan@example.com") == ([], [PAID, OVERDUE])
    assert books.lists("eve@example.com") == ([OVERDUE], [PAID])
    staged = [loads_line(line) for line in (Path(second["staging"]) / FILES["invoice"]).read_text().splitlines()]
    assert sorted((i.id, str(i.outstanding.amount)) for i in staged if isinstance(i, Invoice)) == [
        (late["id"], "0.00"),
        (open_["id"], "60.00"),
        (settled["id"], "80.00"),
    ]
    # The cost: nothing when FreshBooks bumps the invoices (the window brought them), else one call for all three.
    ids = sorted(str(i) for i in (late["id"], open_["id"], settled["id"]))
    expected = [] if fb.model.payment_touches_invoice else [ids]
    assert [sorted(asked) for asked in _refresh_calls(fb, calls_before)] == expected
    assert second["counts"]["invoice_refreshed"] == (0 if fb.model.payment_touches_invoice else 3)


def test_a_quiet_day_refreshes_nothing(books: Books) -> None:
    fb = books.fb
    client = fb.add_client(email="ann@example.com")
    fb.add_invoice(customerid=client["id"], create_date="2025-05-25", amount="10.00")
    books.clock.now += timedelta(hours=6)
    books.run("day1")
    books.clock.now += timedelta(days=1)
    fb.update("client", client["id"], lname="Renamed")
    calls_before = len(fb.calls)
    assert books.run("day2")["counts"]["invoice_refreshed"] == 0
    assert _refresh_calls(fb, calls_before) == []
