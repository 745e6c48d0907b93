"""The status page lists webhook events whose record could not be read: failed ones and those still retried."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow_provider_fbmkto.state import StateDB
from tests.ui.conftest import Seeded
from tests.ui.test_ui_status_app import client_for, get_page

T0 = datetime(2025, 3, 4, 15, 0, tzinfo=timezone.utc)


def _event(db: StateDB, account: str, delivery: str, object_id: str) -> None:
    assert db.events.record(
        account,
        name="invoice.sendByEmail",
        object_id=object_id,
        account_id="ACME01",
        business_id=None,
        user_id=None,
        received_at=T0,
        delivery_id=delivery,
    )


def test_failed_and_retrying_webhook_events_are_shown_escaped_per_readable_account(seeded: Seeded) -> None:
    db = seeded.db
    _event(db, "acme", "d1", "404404")
    _event(db, "acme", "d2", "5")
    _event(db, "globex", "d3", "77")
    gone, retried = db.events.pending("acme")
    (other,) = db.events.pending("globex")
    for run in ("run-1", "run-2", "run-3"):
        db.events.record_failure(gone, "FreshBooks GET invoice 404404 failed with HTTP 404: <not found>", run, limit=3)
    db.events.record_failure(retried, "FreshBooks is failing; retry later", "run-3", limit=3)
    db.events.record_failure(other, "globex's reason", "run-3", limit=3)

    page = get_page(client_for(seeded))
    assert 'data-testid="event-failures"' in page
    rows = page.split('data-testid="event-failure-row"')[1:]
    assert len(rows) == 3
    mine = [r for r in rows if "404404" in r]
    assert len(mine) == 1
    assert '<td class="error">failed</td><td>3</td>' in mine[0]
    assert "HTTP 404: &lt;not found&gt;" in mine[0]  # escaped
    assert any('<td class="warn">retrying</td><td>1</td>' in r and "<code>5</code>" in r for r in rows)

    # bob may read globex only: acme's events are not his to see.
    bobs = get_page(client_for(seeded), token="tok-bob")
    assert "404404" not in bobs
    assert "globex&#x27;s reason" in bobs
    # The account filter applies to them too.
    assert "globex&#x27;s reason" not in get_page(client_for(seeded), query="?account=acme")


def test_no_section_without_unreadable_events(seeded: Seeded) -> None:
    assert 'data-testid="event-failures"' not in get_page(client_for(seeded))
