"""What FreshBooks does not document, the hook does not rely on: the zone of ``updated_min/max`` days, the
default page size, and the invoices of a by-id refresh being live.

Each test runs the hook against the emulator switched to every candidate behaviour and asserts on what came
back and on the requests the emulator logged.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from conftest import hook

from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator

UTC = timezone.utc
EASTERN = ZoneInfo("America/New_York")
#: The zones FreshBooks might count ``search[updated_min|max]`` days in: the zone ``updated`` is written in,
#: UTC, and the business's own zone -- here the two furthest from Eastern (UTC+14 and UTC-11).
SEARCH_ZONES = ["America/New_York", "UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago"]

WINDOWS = {
    # an Eastern day (a DAG in the default account zone)
    "eastern-day": (datetime(2025, 6, 10, 0, 0, tzinfo=EASTERN), datetime(2025, 6, 11, 0, 0, tzinfo=EASTERN)),
    # a UTC day: its edges fall at 20:00 Eastern, late in an Eastern day
    "utc-day": (datetime(2025, 6, 10, tzinfo=UTC), datetime(2025, 6, 11, tzinfo=UTC)),
    # Eastern's short day (spring forward)
    "dst-day": (datetime(2025, 3, 9, 0, 0, tzinfo=EASTERN), datetime(2025, 3, 10, 0, 0, tzinfo=EASTERN)),
    # an hour just before Eastern midnight: already the next day in UTC and further east
    "late-hour": (datetime(2025, 6, 10, 23, 0, tzinfo=EASTERN), datetime(2025, 6, 11, 0, 0, tzinfo=EASTERN)),
}
SECOND = timedelta(seconds=1)


@pytest.fixture(params=SEARCH_ZONES)
def zoned(request: pytest.FixtureRequest, authorized: FreshBooksEmulator) -> FreshBooksEmulator:
    authorized.configure(search_zone=request.param)
    return authorized


@pytest.mark.parametrize("window", list(WINDOWS), ids=list(WINDOWS))
def test_a_window_loses_nothing_whatever_zone_freshbooks_counts_search_days_in(
    zoned: FreshBooksEmulator, window: str
) -> None:
    start, end = (w.astimezone(UTC) for w in WINDOWS[window])
    edges = {
        "before": start - SECOND,
        "first": start,
        "second": start + SECOND,
        "last": end - SECOND,
        "after": end,
    }
    for name, updated in edges.items():
        zoned.add_client(email=f"{name}@example.com", updated=updated)

    got = sorted(c.email.split("@")[0] for c in hook().iter_clients(start, end))

    assert got == ["first", "last", "second"]
    # The emulator compared in the zone it was switched to, and the hook sent one day-granular search.
    (call,) = [c for c in zoned.calls if c.path.endswith("/users/clients")]
    assert zoned.behaviour()["search_zone"] == zoned.model.search_zone.key
    assert call.param("search[updated_min]") is not None
    assert call.param("search[updated_max]") is not None


@pytest.mark.parametrize("default_per_page", [15, 7, 100])
def test_every_list_call_names_its_page_size(authorized: FreshBooksEmulator, default_per_page: int) -> None:
    authorized.configure(default_per_page=default_per_page)
    for i in range(230):
        authorized.add_client(email=f"c{i}@example.com")

    assert len(list(hook().iter_clients())) == 230
    assert len(list(hook(per_page=40).iter_clients())) == 230

    calls = [c for c in authorized.calls if c.path.endswith("/users/clients")]
    assert [c.param("per_page") for c in calls] == ["100"] * 3 + ["40"] * 6
    assert [c.param("page") for c in calls] == ["1", "2", "3", "1", "2", "3", "4", "5", "6"]


def test_refresh_by_id_asks_deleted_ones_only_for_the_ids_not_found(authorized: FreshBooksEmulator) -> None:
    client = authorized.add_client(email="ids@example.com")
    ids = [authorized.add_invoice(customerid=client["id"], amount="5.00", status="sent")["id"] for _ in range(230)]
    authorized.delete("invoice", ids[7])
    authorized.calls.clear()

    got = list(hook().iter_invoices(invoice_ids=[*ids, ids[0]], include_deleted=True))

    assert sorted(i.id for i in got) == ids
    assert [i.id for i in got if i.is_deleted] == [ids[7]]
    calls = [c for c in authorized.calls if c.path.endswith("/invoices/invoices")]
    asked = [c.query["search[invoiceids][]"] for c in calls]
    assert [len(a) for a in asked] == [100, 100, 30, 1]  # 100 ids a call, each id once
    assert asked[-1] == [str(ids[7])]
    assert [c.param("search[vis_state]") for c in calls] == [None, None, None, "1"]
    assert all(c.param("search[updated_min]") is None for c in calls)  # a refresh is not limited by `updated`


def test_refresh_by_id_of_live_invoices_makes_no_deleted_pass(authorized: FreshBooksEmulator) -> None:
    client = authorized.add_client(email="live@example.com")
    ids = [authorized.add_invoice(customerid=client["id"], amount="5.00", status="sent")["id"] for _ in range(3)]
    authorized.calls.clear()

    assert sorted(i.id for i in hook().iter_invoices(invoice_ids=ids, include_deleted=True)) == ids
    assert len([c for c in authorized.calls if c.path.endswith("/invoices/invoices")]) == 1
