"""The FreshBooks emulator's switches for behaviours FreshBooks does not document, through the wire.

``payment_touches_invoice`` (does a payment bump its invoice's ``updated``?), ``search_zone`` (which zone's
days ``search[updated_min|max]`` compare in) and ``default_per_page`` (the page size without ``per_page``):
each is shown both ways over real HTTP, set from the constructor, ``configure()`` or the control API, and
``reset()`` goes back to the constructor's choice.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator

UTC = timezone.utc
ACCT = "ACME01"
START = datetime(2025, 6, 10, 16, 0, tzinfo=UTC)  # 12:00 US/Eastern


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[FreshBooksEmulator, Clock]]:
    clock = Clock()
    with FreshBooksEmulator(port=0, clock=clock) as emu:
        yield emu, clock


@pytest.fixture
def fb(served: tuple[FreshBooksEmulator, Clock]) -> FreshBooksEmulator:
    emu, clock = served
    emu.reset()
    del emu.model.listeners[1:]  # keep the webhook hub, drop a previous test's event recorder
    clock.now = START
    return emu


@pytest.fixture
def clock(served: tuple[FreshBooksEmulator, Clock], fb: FreshBooksEmulator) -> Clock:
    return served[1]


def _token(fb: FreshBooksEmulator) -> str:
    r = requests.post(
        f"{fb.url}/auth/oauth/token",
        json={
            "grant_type": "authorization_code",
            "code": fb.issue_code(),
            "client_id": fb.client_id,
            "client_secret": fb.client_secret,
            "redirect_uri": fb.redirect_uri,
        },
        timeout=5,
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _list(fb: FreshBooksEmulator, resource: str, params: Any = None) -> dict[str, Any]:
    r = requests.get(
        f"{fb.url}/accounting/account/{ACCT}/{resource}",
        headers={"Authorization": f"Bearer {_token(fb)}"},
        params=params,
        timeout=5,
    )
    assert r.status_code == 200, r.text
    return dict(r.json()["response"]["result"])


def _invoice(fb: FreshBooksEmulator, invoice_id: int) -> dict[str, Any]:
    (row,) = _list(fb, "invoices/invoices", {"search[invoiceids][]": invoice_id})["invoices"]
    return dict(row)


@pytest.mark.parametrize("touches", [True, False], ids=["touches", "leaves-alone"])
def test_payment_touches_invoice_switch(fb: FreshBooksEmulator, clock: Clock, touches: bool) -> None:
    fb.configure(payment_touches_invoice=touches)
    events: list[str] = []
    fb.model.listeners.append(lambda name, _id: events.append(name))  # dropped by the next test's fb.reset()
    cid = fb.add_client(email="p@example.com")["id"]
    iid = fb.add_invoice(customerid=cid, amount="100.00", create_date="2025-06-01", status="sent")["id"]
    assert _invoice(fb, iid)["updated"] == "2025-06-10 12:00:00"

    clock.now = START + timedelta(days=1)  # recorded the next day
    pay = fb.add_payment(invoiceid=iid, amount="40.00", date="2025-06-11")
    clock.now = START + timedelta(days=2)
    fb.update("payment", pay["id"], amount="100.00")  # changed
    changed = _invoice(fb, iid)
    clock.now = START + timedelta(days=3)
    fb.delete("payment", pay["id"])  # deleted
    reverted = _invoice(fb, iid)

    # The amounts follow the payments either way: FreshBooks' own `outstanding` is always current.
    assert (changed["outstanding"]["amount"], changed["status"], changed["date_paid"]) == ("0.00", 4, "2025-06-11")
    assert (reverted["outstanding"]["amount"], reverted["status"]) == ("100.00", 2)
    # Only `updated` (and so an updated_min search) depends on the switch.
    assert reverted["updated"] == ("2025-06-13 12:00:00" if touches else "2025-06-10 12:00:00")
    since_payment = _list(fb, "invoices/invoices", {"search[updated_min]": "2025-06-11"})["invoices"]
    assert [row["id"] for row in since_payment] == ([iid] if touches else [])
    # ...and so does the webhook FreshBooks would send for an invoice change.
    payment_events = ["payment.create", "payment.update", "payment.delete"]
    if touches:
        payment_events = [e for p in payment_events for e in (p, "invoice.update")]
    assert events == ["client.create", "invoice.create", *payment_events]


@pytest.mark.parametrize(
    ("zone", "found"),
    [("America/New_York", False), ("UTC", True), ("Pacific/Kiritimati", True), ("Pacific/Pago_Pago", False)],
)
def test_search_zone_decides_which_day_updated_falls_on(
    fb: FreshBooksEmulator, clock: Clock, zone: str, found: bool
) -> None:
    fb.configure(search_zone=zone)
    # 2025-06-10 22:30 Eastern = 06-11 02:30 UTC = 06-11 16:30 at UTC+14 = 06-10 15:30 at UTC-11
    cid = fb.add_client(email="z@example.com", updated=datetime(2025, 6, 11, 2, 30, tzinfo=UTC))["id"]
    listed = _list(fb, "users/clients", {"search[updated_min]": "2025-06-11"})["clients"]
    assert [row["id"] for row in listed] == ([cid] if found else [])
    # `updated` itself is US/Eastern wall time whatever the search compares in.
    assert fb.get("client", cid)["updated"] == "2025-06-10 22:30:00"


@pytest.mark.parametrize("default", [15, 7])
def test_default_per_page_applies_only_without_per_page(fb: FreshBooksEmulator, default: int) -> None:
    fb.configure(default_per_page=default)
    for i in range(20):
        fb.add_client(email=f"c{i}@example.com")
    implicit = _list(fb, "users/clients")
    assert (len(implicit["clients"]), implicit["per_page"], implicit["pages"]) == (default, default, -(-20 // default))
    explicit = _list(fb, "users/clients", {"per_page": 100})
    assert (len(explicit["clients"]), explicit["per_page"]) == (20, 100)


def test_control_api_switches_and_reset_restores_the_constructor_choice(fb: FreshBooksEmulator) -> None:
    base = f"{fb.url}/_emulator/behaviour"
    assert requests.get(base, timeout=5).json() == {
        "payment_touches_invoice": True,
        "search_zone": "America/New_York",
        "default_per_page": 15,
    }
    r = requests.post(base, json={"payment_touches_invoice": False, "search_zone": "UTC"}, timeout=5)
    assert r.json() == {"payment_touches_invoice": False, "search_zone": "UTC", "default_per_page": 15}
    assert fb.model.payment_touches_invoice is False
    assert requests.get(f"{fb.url}/_emulator", timeout=5).json()["behaviour"]["search_zone"] == "UTC"
    fb.reset()
    assert fb.behaviour()["payment_touches_invoice"] is True
    assert fb.behaviour()["search_zone"] == "America/New_York"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"payment_touches_invoice": "no"}, "payment_touches_invoice"),
        ({"search_zone": "Mars/Olympus"}, "search_zone"),
        ({"default_per_page": 0}, "default_per_page"),
        ({"per_page": 10}, "per_page"),
    ],
)
def test_control_api_bad_switch_is_400_naming_the_field(
    fb: FreshBooksEmulator, body: dict[str, Any], field: str
) -> None:
    r = requests.post(f"{fb.url}/_emulator/behaviour", json=body, timeout=5)
    assert r.status_code == 400
    assert r.json()["field"] == field
    assert fb.behaviour()["default_per_page"] == 15  # nothing half-applied


def test_constructor_switches() -> None:
    emu = FreshBooksEmulator(payment_touches_invoice=False, search_zone="UTC", default_per_page=50)
    assert emu.behaviour() == {"payment_touches_invoice": False, "search_zone": "UTC", "default_per_page": 50}
    with pytest.raises(ValueError, match="search_zone"):
        FreshBooksEmulator(search_zone="Eastern")
