"""Real DAG runs: exact Marketo state, segment moves, idempotent reruns and backfills, faults and replays."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import OVERDUE, PAID, World, day

pytestmark = pytest.mark.e2e


def _seed(w: World) -> dict[str, object]:
    """Three clients; in the window [day(5), day(4)) one invoice is sent, one paid, one goes overdue."""
    fb = w.fb
    ann = fb.add_client(fname="Ann", lname="Lee", email="ann@bigco.io", organization="BigCo")
    bob = fb.add_client(fname="Bob", lname="Ray", email="bob@bigco.io", organization="BigCo")
    cat = fb.add_client(fname="Cat", lname="Poe", email="cat@gmail.com", organization="")
    sent = fb.add_invoice(customerid=ann["id"], create_date=day(5).isoformat(), due_offset_days=30, amount="100.00")
    fb.add_invoice(customerid=ann["id"], create_date=day(5).isoformat(), amount="999.00", status=1)  # draft
    late = fb.add_invoice(customerid=cat["id"], create_date=day(20).isoformat(), due_offset_days=14, amount="250.00")
    paid = fb.add_invoice(customerid=bob["id"], create_date=day(30).isoformat(), due_offset_days=30, amount="80.00")
    pay = fb.add_payment(invoiceid=paid["id"], amount="80.00", date=day(5).isoformat())
    return {"ann": ann, "bob": bob, "cat": cat, "sent": sent, "late": late, "paid": paid, "pay": pay}


def _midnight(d: object) -> str:
    return f"{d}T00:00:00Z"


def test_one_window_gives_exact_marketo_state_and_segments_follow_payment(world: World):
    rec = _seed(world)
    world.ok(day(4))

    # Activities: dated at the event, one per fact, on the right lead.
    assert world.timeline("ann@bigco.io") == [(_midnight(day(5)), "fbInvoiceSent", rec["sent"]["invoice_number"])]
    assert world.timeline("bob@bigco.io") == [(_midnight(day(5)), "fbPaymentReceived", str(rec["pay"]["id"]))]
    # Due day(6) → overdue from the start of day(5), still unpaid at the window's end.
    assert world.timeline("cat@gmail.com") == [(_midnight(day(5)), "fbInvoiceOverdue", rec["late"]["invoice_number"])]
    (sent_act,) = [a for a in world.mkto.activities(world.lead("ann@bigco.io")["id"])]
    attrs = {a.get("apiName") or a.get("name"): a["value"] for a in sent_act["attributes"]}
    assert float(attrs.pop("amount")) == 100.0  # Marketo stores the currency attribute as a number
    assert attrs == {"fbAccountId": "ACME01", "currency": "USD", "dueDate": str(day(5 - 30))}

    # Company by explicit rule, over both BigCo clients; the free-mail client has none.
    (company,) = world.mkto.companies()
    assert company["externalCompanyId"] == "fbmkto:bigco-holdings"
    assert company["company"] == "BigCo Holdings"
    assert company["fbPaymentStatus"] == "current"  # worst of current (ann) and paid (bob)
    assert float(company["fbOutstandingBalance"]) == 100.0
    assert int(company["fbInvoiceCount"]) == 2  # the draft does not count
    assert company["fbPaymentTerms"] == "Net 30"
    assert world.lead("ann@bigco.io")["externalCompanyId"] == "fbmkto:bigco-holdings"

    # Segments: lead field and lists.
    assert [world.lead(e)["fbPaymentStatus"] for e in ("ann@bigco.io", "bob@bigco.io", "cat@gmail.com")] == [
        "current",
        "paid",
        "overdue",
    ]
    bob_id, cat_id = world.lead("bob@bigco.io")["id"], world.lead("cat@gmail.com")["id"]
    assert world.mkto.list_members(PAID) == [bob_id]
    assert world.mkto.list_members(OVERDUE) == [cat_id]

    # Cat pays on day(4): the next window records the payment and moves her from the overdue to the paid list.
    pay2 = world.fb.add_payment(invoiceid=rec["late"]["id"], amount="250.00", date=day(4).isoformat())
    world.ok(day(3))
    assert world.timeline("cat@gmail.com")[-1] == (_midnight(day(4)), "fbPaymentReceived", str(pay2["id"]))
    assert world.lead("cat@gmail.com")["fbPaymentStatus"] == "paid"
    assert sorted(world.mkto.list_members(PAID)) == sorted([bob_id, cat_id])
    assert world.mkto.list_members(OVERDUE) == []
    assert world.duplicates() == 0


def test_reruns_out_of_order_windows_and_overlapping_manual_run_write_nothing_twice(world: World):
    _seed(world)
    world.ok(day(3))  # later window first
    world.ok(day(4))
    state_after = (sorted(world.activity_keys()), world.mkto.leads(), world.mkto.companies())
    writes_before = len(world.mkto.rest_calls())
    world.ok(day(4))  # same window again
    world.ok(day(3))
    world.ok(day(2), conf={"window_start": str(day(8)), "window_end": str(day(2))})  # overlapping manual window
    assert world.duplicates() == 0
    assert sorted(world.activity_keys()) == state_after[0]
    assert world.mkto.companies() == state_after[2]
    # Reruns only read: no activity, lead or company write reached Marketo.
    writes = [c for c in world.mkto.rest_calls()[writes_before:] if c.effective_method == "POST"]
    assert [c.path for c in writes if "activities/external.json" in c.path or "leads.json" in c.path] == []


def test_dry_run_writes_nothing(world: World):
    _seed(world)
    out = world.ok(day(4), conf={"dry_run": True})
    assert world.mkto.activities() == []
    assert world.mkto.leads() == []
    assert "dry run" in out
