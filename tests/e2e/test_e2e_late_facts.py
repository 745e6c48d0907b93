"""Real DAG runs: no FreshBooks fact is lost -- late, back-dated, changed and deleted records (issue 15).

The account's scope is ``[horizon, frontier)``, the span its runs have covered. A fact dated inside it is sent
by the first run that sees it, at its own date, once; a fact after the frontier waits for its window. Each
test drives a few real runs and checks Marketo's exact state (activities, lists, leads) and the write calls.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timezone
from typing import Any

import pytest

from airflow_provider_fbmkto.pipeline.extract import PULLED_UNTIL
from airflow_provider_fbmkto.state import StateDB
from tests.e2e.conftest import OVERDUE, PAID, World, day

pytestmark = pytest.mark.e2e

SENT, PAYMENT, LATE = "fbInvoiceSent", "fbPaymentReceived", "fbInvoiceOverdue"


def _at(d: date) -> str:
    return f"{d}T00:00:00Z"


def _writes(w: World, since: int) -> list[str]:
    """Paths of the Marketo calls that wrote something, after the first ``since`` calls."""
    return [c.path for c in w.mkto.rest_calls()[since:] if c.effective_method in ("POST", "DELETE")]


def _state(w: World) -> StateDB:
    return StateDB(f"sqlite:///{json.loads(w.env['AIRFLOW_CONN_FBMKTO_STATE'])['host']}")


def _report(db: StateDB) -> dict[str, Any]:
    (last,) = db.runs.recent("acme", limit=1)
    assert last.summary is not None
    return last.summary


def test_late_back_dated_moved_and_deleted_facts_each_reach_marketo_once(world: World):
    w, fb = world, world.fb
    ann = fb.add_client(fname="Ann", lname="Lee", email="ann@bigco.io")
    bob = fb.add_client(fname="Bob", lname="Ray", email="bob@shop.io")
    cat = fb.add_client(fname="Cat", lname="Poe", email="cat@cat.io")
    dan = fb.add_client(fname="Dan", lname="Orr", email="dan@dan.io")
    a1 = fb.add_invoice(customerid=ann["id"], create_date=str(day(12)), due_offset_days=30, amount="100.00")
    b1 = fb.add_invoice(customerid=bob["id"], create_date=str(day(40)), due_offset_days=28, amount="50.00")
    d1 = fb.add_invoice(customerid=dan["id"], create_date=str(day(40)), due_offset_days=30, amount="70.00")
    d1_pay = fb.add_payment(invoiceid=d1["id"], amount="70.00", date=str(day(12)))
    c1 = fb.add_invoice(customerid=cat["id"], create_date=str(day(12)), amount="30.00", status=1)  # a draft
    old = fb.add_invoice(customerid=ann["id"], create_date=str(day(800)), amount="9.00")  # beyond retention
    old_pay = fb.add_payment(invoiceid=old["id"], amount="9.00", date=str(day(765)))  # paid long ago
    first = {"window_start": str(day(805)), "window_end": str(day(10))}  # the first run backfills 2+ years
    db = _state(w)
    calls = len(w.mkto.rest_calls())  # after provisioning

    # (g) A dry run writes nothing anywhere: no Marketo write, ledger row, scope, watermark or last success...
    out = w.ok(day(10), conf={**first, "dry_run": True})
    assert "would write activity: 5 new" in out
    assert _writes(w, calls) == []
    assert w.mkto.leads() == []
    assert db.ledger.counts("acme") == {}
    assert db.scopes.get("acme") is None
    assert db.watermarks.get("acme", PULLED_UNTIL) is None
    assert db.runs.last_success("acme") is None
    preview = _report(db)["preview"]
    assert (preview["activity"]["new"], preview["lead"]["new"], preview["list"]["new"]) == (5, 4, 4)
    assert f"new: {PAYMENT} {d1_pay['id']} on {day(12)} for dan@dan.io" in preview["activity"]["examples"]

    # ... and the run it previewed then does exactly that. The 800-day-old invoice is noted, not sent.
    w.ok(day(10), conf=first)
    assert w.timeline("ann@bigco.io") == [(_at(day(12)), SENT, a1["invoice_number"])]
    assert w.timeline("bob@shop.io") == [
        (_at(day(40)), SENT, b1["invoice_number"]),
        (_at(day(11)), LATE, b1["invoice_number"]),
    ]
    assert w.timeline("dan@dan.io") == [
        (_at(day(40)), SENT, d1["invoice_number"]),
        (_at(day(12)), PAYMENT, str(d1_pay["id"])),
    ]
    assert w.timeline("cat@cat.io") == []
    too_old = _report(db)["changes"]["too_old"]
    assert too_old["count"] == 2
    assert sorted(too_old["examples"]) == [
        f"invoice_sent:acme:{old['id']}",
        f"payment_received:acme:{old_pay['id']}",
    ]
    old_bob, dan_id = w.lead("bob@shop.io")["id"], w.lead("dan@dan.io")["id"]
    assert (w.mkto.list_members(PAID), w.mkto.list_members(OVERDUE)) == ([dan_id], [old_bob])

    # Real books are late. Before the next daily run [day(10), day(9)):
    late_pay = fb.add_payment(invoiceid=a1["id"], amount="40.00", date=str(day(11)))  # (a) a cheque of day(11)
    fb.send_invoice(c1["id"])  # (b) the draft of day(12) is sent only now
    c2 = fb.add_invoice(customerid=cat["id"], create_date=str(day(20)), due_offset_days=5, amount="80.00")  # (c)
    fb.update("client", bob["id"], email="bob@newshop.io")  # (d) Bob's billing e-mail changes
    fb.delete("client", dan["id"])  # (e) Dan is deleted
    f1 = fb.add_invoice(customerid=ann["id"], create_date=str(day(5)), due_offset_days=30, amount="10.00")
    calls = len(w.mkto.rest_calls())
    w.ok(day(9))

    assert w.timeline("ann@bigco.io") == [
        (_at(day(12)), SENT, a1["invoice_number"]),
        (_at(day(11)), PAYMENT, str(late_pay["id"])),
    ]
    assert w.timeline("cat@cat.io") == sorted(
        [
            (_at(day(12)), SENT, c1["invoice_number"]),
            (_at(day(20)), SENT, c2["invoice_number"]),
            (_at(day(14)), LATE, c2["invoice_number"]),  # due day(15): overdue from day(14), already when typed in
        ]
    )
    assert f1["invoice_number"] not in {p for *_, p in w.timeline("ann@bigco.io")}  # after the frontier: waits
    new_bob, cat_id = w.lead("bob@newshop.io")["id"], w.lead("cat@cat.io")["id"]
    assert w.lead("bob@newshop.io")["fbPaymentStatus"] == "overdue"
    assert w.mkto.list_members(PAID) == []  # Dan's lead left the paid list
    assert sorted(w.mkto.list_members(OVERDUE)) == sorted([new_bob, cat_id])  # the old Bob lead left it
    assert w.lead("bob@shop.io")["fbPaymentStatus"] == "overdue"  # its other fields stay as they were
    changes = _report(db)["changes"]
    assert changes["email_changes"] == [{"client": bob["id"], "from": "bob@shop.io", "to": "bob@newshop.io"}]
    assert changes["deleted_clients"] == [{"client": dan["id"], "email": "dan@dan.io"}]
    assert _writes(w, calls).count("/rest/v1/activities/external.json") == 1  # the late facts in one batch

    # (h) The same window again: nothing is written twice (no write call at all).
    calls, activities = len(w.mkto.rest_calls()), sorted(w.activity_keys())
    w.ok(day(9))
    assert _writes(w, calls) == []

    # (g) A dry run of a manual run "since the last success", then that run: nothing skipped. Meanwhile Cat's
    # name changes in FreshBooks without its ``updated`` moving, which only a full refresh re-reads.
    fb.update("client", cat["id"], fname="Catherine", updated=f"{day(30)} 09:00:00")
    since_last = {"window_end": datetime.now(timezone.utc).isoformat()}
    w.ok(day(9), conf={**since_last, "dry_run": True})
    assert sorted(w.activity_keys()) == activities
    assert db.runs.last_success("acme").window_end == datetime.combine(day(9), time(), timezone.utc)  # type: ignore[union-attr]
    w.ok(day(9), conf=since_last)
    assert _report(db)["window"]["start"] == datetime.combine(day(9), time(), timezone.utc).isoformat()
    assert w.timeline("ann@bigco.io")[-1] == (_at(day(5)), SENT, f1["invoice_number"])  # its window came
    assert w.lead("cat@cat.io")["firstName"] == "Cat"

    # full_refresh re-reads every record: the silent rename arrives; no activity is sent again.
    calls = len(w.mkto.rest_calls())
    w.ok(day(9), conf={"full_refresh": True})
    assert w.lead("cat@cat.io")["firstName"] == "Catherine"
    assert "/rest/v1/activities/external.json" not in _writes(w, calls)
    assert w.duplicates() == 0
    assert len(w.mkto.activities()) == len(activities) + 1
