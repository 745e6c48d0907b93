"""Payments move leads between segments whatever FreshBooks does where its documentation is silent.

One compact pair of real DAG runs, parametrized over the FreshBooks emulator's undocumented behaviours: as the
emulator has always guessed (a payment bumps its invoice's ``updated``; search days in US/Eastern; 15 a page
by default), and every one the other way (the invoice's ``updated`` stays; search days in the business's zone,
UTC+14; 7 a page). Pay up → the lead moves from the overdue to the paid list; a partial payment → partial; a
deleted payment → the paid lead is overdue again. Exact lead fields and list membership in Marketo.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.e2e.conftest import OVERDUE, PAID, World, day

pytestmark = pytest.mark.e2e

BEHAVIOURS: dict[str, dict[str, Any]] = {
    "as-guessed": {"payment_touches_invoice": True, "search_zone": "America/New_York", "default_per_page": 15},
    "other-way": {"payment_touches_invoice": False, "search_zone": "Pacific/Kiritimati", "default_per_page": 7},
}
EMAILS = ("cat@gmail.com", "dan@initech.io", "eve@globex.io")


def _status(w: World) -> list[tuple[str, float]]:
    return [(w.lead(e)["fbPaymentStatus"], float(w.lead(e)["fbOutstandingBalance"])) for e in EMAILS]


@pytest.mark.parametrize("behaviour", list(BEHAVIOURS), ids=list(BEHAVIOURS))
def test_pay_up_partial_payment_and_deleted_payment_move_the_segments(world: World, behaviour: str) -> None:
    fb = world.fb
    assert fb.configure(**BEHAVIOURS[behaviour]) == BEHAVIOURS[behaviour]
    # The invoices were last touched two days ago: only a refresh (or FreshBooks bumping them) brings them back.
    old: dict[str, Any] = {"updated": datetime.now(timezone.utc) - timedelta(days=2)}
    old["created_at"] = old["updated"]
    cat, dan, eve = (fb.add_client(fname=e[:3].title(), lname="X", email=e, **old) for e in EMAILS)
    late = fb.add_invoice(customerid=cat["id"], create_date=day(20), due_offset_days=14, amount="250.00", **old)
    open_ = fb.add_invoice(customerid=dan["id"], create_date=day(10), due_offset_days=30, amount="100.00", **old)
    settled = fb.add_invoice(customerid=eve["id"], create_date=day(50), due_offset_days=30, amount="80.00", **old)
    eve_pay = fb.add_payment(invoiceid=settled["id"], amount="80.00", date=day(5), **old)

    world.ok(day(4))
    assert _status(world) == [("overdue", 250.0), ("current", 100.0), ("paid", 0.0)]
    cat_id, eve_id = world.lead("cat@gmail.com")["id"], world.lead("eve@globex.io")["id"]
    assert (world.mkto.list_members(PAID), world.mkto.list_members(OVERDUE)) == ([eve_id], [cat_id])

    # Cat pays up, Dan pays part, Eve's payment is deleted (her invoice was due 20 days ago).
    pay = fb.add_payment(invoiceid=late["id"], amount="250.00", date=day(4))
    fb.add_payment(invoiceid=open_["id"], amount="40.00", date=day(4))
    fb.delete("payment", eve_pay["id"])
    calls_before = len(fb.calls)
    world.ok(day(3))

    assert _status(world) == [("paid", 0.0), ("partial", 60.0), ("overdue", 80.0)]
    assert (world.mkto.list_members(PAID), world.mkto.list_members(OVERDUE)) == ([cat_id], [eve_id])
    assert ("fbPaymentReceived", str(pay["id"])) in [(t[1], t[2]) for t in world.timeline("cat@gmail.com")]
    assert world.duplicates() == 0
    # Every list call named its page size; the invoices were re-read by id only when FreshBooks left them alone.
    lists = [c for c in fb.calls[calls_before:] if c.path.startswith("/accounting/") and c.method == "GET"]
    assert all(c.param("per_page") == "100" for c in lists)
    refreshed = [sorted(c.query["search[invoiceids][]"]) for c in lists if "search[invoiceids][]" in c.query]
    ids = sorted(str(i["id"]) for i in (late, open_, settled))
    assert refreshed == ([] if BEHAVIOURS[behaviour]["payment_touches_invoice"] else [ids])
