"""Extract and pending webhook events against the FreshBooks emulator: an unreadable record is counted and left
for the next run, one that can never be read is failed at once, errors of the connection fail the task as
before (and count against no event), and a dry run counts nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from airflow_provider_fbmkto.cli import main as fbmkto
from airflow_provider_fbmkto.exceptions import AuthError
from airflow_provider_fbmkto.hooks.freshbooks import FreshBooksHook
from airflow_provider_fbmkto.hooks.marketo_limits import reset_process_state
from airflow_provider_fbmkto.pipeline.context import RunContext
from airflow_provider_fbmkto.pipeline.extract import EVENTS_FILE, extract
from airflow_provider_fbmkto.state import StateDB
from airflow_provider_fbmkto.sync.config import load_config
from airflow_provider_fbmkto.sync.window import Window
from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator

ACCT, FB_CONN = "acme", "freshbooks_acme"
CONFIG = f"""
accounts:
  - name: {ACCT}
    freshbooks_conn_id: {FB_CONN}
    marketo_conn_id: marketo_default
    schedule: "@daily"
    start_date: "2025-01-01"
    segments: {{paid_list_id: 1, overdue_list_id: 2}}
    webhooks: true
"""


Env = tuple[FreshBooksEmulator, StateDB, Path]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("FBMKTO_FERNET_KEY", Fernet.generate_key().decode())
    reset_process_state()
    with FreshBooksEmulator() as fb:
        monkeypatch.setenv(f"AIRFLOW_CONN_{FB_CONN.upper()}", fb.conn_json())
        assert fbmkto(["authorize", "--conn-id", FB_CONN, "--code", fb.issue_code()]) == 0
        config = tmp_path / "accounts.yaml"
        config.write_text(CONFIG)
        yield fb, StateDB.from_airflow(), config
    reset_process_state()


def _event(db: StateDB, delivery: str, object_id: str, account_id: str) -> None:
    assert db.events.record(
        ACCT,
        name="invoice.sendByEmail",
        object_id=object_id,
        account_id=account_id,
        business_id=None,
        user_id=None,
        received_at=datetime.now(timezone.utc),
        delivery_id=delivery,
    )


def _extract(fb: FreshBooksEmulator, db: StateDB, config: Path, run_id: str, **flags: Any) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    acct = load_config(config).account(ACCT)
    ctx = RunContext(acct, run_id, Window(now - timedelta(days=1), now), now, **flags)
    return extract(FreshBooksHook(FB_CONN, state=db), db, ctx, config.parent / "staging" / run_id)


def test_unreadable_events_are_counted_foreign_and_malformed_ones_fail_at_once(env: Env) -> None:
    fb, db, config = env
    client = fb.add_client(email="ivy@example.com")
    invoice = fb.add_invoice(customerid=client["id"], create_date="2025-05-01", amount="5.00")
    _event(db, "good", str(invoice["id"]), fb.account_id)
    _event(db, "gone", "987654", fb.account_id)
    _event(db, "foreign", str(invoice["id"]), "SOMEONE_ELSE")
    _event(db, "malformed", "12abc", fb.account_id)
    by_delivery = {e.delivery_id: e.id for e in db.events.pending(ACCT)}

    # A dry run stages what it can and counts nothing.
    dry = _extract(fb, db, config, "dry", dry_run=True)
    assert dry["event_ids"] == [by_delivery["good"]]
    assert db.events.failures(ACCT) == []

    out = _extract(fb, db, config, "run-1")
    assert out["event_ids"] == [by_delivery["good"]]
    assert len((Path(out["staging"]) / EVENTS_FILE).read_text().splitlines()) == 1
    got = {f.event_id: f for f in db.events.failures(ACCT)}
    gone = got[by_delivery["gone"]]
    assert (gone.attempts, gone.failed) == (1, False)
    assert "HTTP 404" in gone.reason
    foreign = got[by_delivery["foreign"]]
    assert foreign.failed
    assert f"the event is for FreshBooks account SOMEONE_ELSE, but connection '{FB_CONN}' reads account" in (
        foreign.reason
    )
    malformed = got[by_delivery["malformed"]]
    assert (malformed.failed, malformed.reason) == (True, "object_id '12abc' is not an invoice id")
    assert sorted(e.delivery_id for e in db.events.pending(ACCT)) == ["gone", "good"]  # good: map consumes it


def test_errors_of_the_connection_fail_extract_and_count_against_no_event(env: Env) -> None:
    fb, db, config = env
    _event(db, "gone", "987654", fb.account_id)
    fb.inject_fault("401", count=10, path_prefix=f"/accounting/account/{fb.account_id}/invoices/invoices/987654")
    with pytest.raises(AuthError):
        _extract(fb, db, config, "run-1")
    assert db.events.failures(ACCT) == []
    assert [e.delivery_id for e in db.events.pending(ACCT)] == ["gone"]
