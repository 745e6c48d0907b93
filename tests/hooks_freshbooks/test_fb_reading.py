"""Reading: paging with flat memory, DST-correct windows, deleted/archived records, typed records."""

from __future__ import annotations

import tracemalloc
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from conftest import hook

from airflow_provider_fbmkto.exceptions import ApiError, ConfigError
from airflow_provider_fbmkto.hooks.freshbooks import FreshBooksHook
from airflow_provider_fbmkto.sync.records import Client, InvoiceStatus, VisState
from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator
from airflow_provider_fbmkto.testing.freshbooks.routes import CallRecord

UTC = timezone.utc


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def _list_calls(emu: FreshBooksEmulator, resource: str) -> list[CallRecord]:
    return [c for c in emu.calls if c.path.endswith(resource)]


def _add_bulk(emu: FreshBooksEmulator, start: int, n: int) -> None:
    for i in range(start, start + n):
        emu.add_client(email=f"bulk{i}@example.com", organization="Org " + "x" * 200)


def _streaming_peak(h: FreshBooksHook) -> tuple[int, int]:
    """Peak traced memory while counting every client (nothing kept)."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        count = sum(1 for _ in h.iter_clients())
        return count, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_paging_over_many_records_keeps_memory_flat(authorized: FreshBooksEmulator) -> None:
    h = hook()
    _add_bulk(authorized, 0, 1000)
    list(h.iter_clients())  # warm imports, connection pool and caches
    count_1k, peak_1k = _streaming_peak(h)
    _add_bulk(authorized, 1000, 1000)
    count_2k, peak_2k = _streaming_peak(h)

    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        everything = list(h.iter_clients())
        held_2k = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert (count_1k, count_2k, len(everything)) == (1000, 2000, 2000)
    # Twice the records, (about) the same peak: one page at a time, whatever the total.
    assert peak_2k < peak_1k * 1.3 + 64 * 1024, (peak_1k, peak_2k)
    # ...and well below what the records themselves take when kept.
    assert peak_2k < held_2k / 2, (peak_2k, held_2k)
    calls = _list_calls(authorized, "/users/clients")[-20:]
    assert [int(c.param("page") or 0) for c in calls] == list(range(1, 21))
    assert {c.param("per_page") for c in calls} == {"100"}


def test_iterators_are_lazy(authorized: FreshBooksEmulator) -> None:
    for i in range(250):
        authorized.add_client(email=f"lazy{i}@example.com")
    h = hook()
    h.tokens.access_token()
    before = len(authorized.calls)
    it = h.iter_clients()
    assert len(authorized.calls) == before  # nothing fetched yet
    next(it)
    assert len(authorized.calls) == before + 1  # one page


# --- windows across DST -------------------------------------------------------------------------------------
# 2025-03-09: US/Eastern clocks jump 02:00 EST -> 03:00 EDT (07:00Z). 2025-11-02: 02:00 EDT -> 01:00 EST (06:00Z).
# FreshBooks renders `updated` as naive Eastern wall time; the window is in UTC instants.

SPRING = [  # (UTC instant of the change, in window [06:30Z, 07:30Z)?)   Eastern wall time FreshBooks shows
    (_utc(2025, 3, 8, 23, 0), False),  # 2025-03-08 18:00 EST (in the widened search, filtered out)
    (_utc(2025, 3, 9, 6, 29, 59), False),  # 01:29:59 EST
    (_utc(2025, 3, 9, 6, 30), True),  # 01:30:00 EST - the start is inclusive
    (_utc(2025, 3, 9, 6, 59, 59), True),  # 01:59:59 EST - last second before the jump
    (_utc(2025, 3, 9, 7, 0), True),  # 03:00:00 EDT - first second after it
    (_utc(2025, 3, 9, 7, 29, 59), True),  # 03:29:59 EDT
    (_utc(2025, 3, 9, 7, 30), False),  # 03:30:00 EDT - the end is exclusive
    (_utc(2025, 3, 12, 12, 0), False),  # outside the widened search days
]
FALL = [  # window [04:30Z, 07:30Z) = 00:30 EDT .. 02:30 EST on 2025-11-02
    (_utc(2025, 11, 2, 4, 29, 59), False),  # 00:29:59 EDT
    (_utc(2025, 11, 2, 4, 30), True),  # 00:30:00 EDT
    (_utc(2025, 11, 2, 5, 30), True),  # 01:30:00 EDT (first 01:30)
    (_utc(2025, 11, 2, 6, 30), True),  # 01:30:00 EST (second 01:30, same text; read as the first: still in)
    (_utc(2025, 11, 2, 7, 0), True),  # 02:00:00 EST
    (_utc(2025, 11, 2, 7, 29, 59), True),  # 02:29:59 EST
    (_utc(2025, 11, 2, 7, 30), False),  # 02:30:00 EST - exclusive end
    (_utc(2025, 11, 3, 5, 30), False),  # 2025-11-03 00:30 EST, in the widened search only
]


@pytest.mark.parametrize(
    ("cases", "start", "end", "days"),
    [
        (SPRING, _utc(2025, 3, 9, 6, 30), _utc(2025, 3, 9, 7, 30), ("2025-03-08", "2025-03-11")),
        (FALL, _utc(2025, 11, 2, 4, 30), _utc(2025, 11, 2, 7, 30), ("2025-11-01", "2025-11-04")),
    ],
    ids=["spring-forward", "fall-back"],
)
def test_windows_across_dst_select_exactly(
    authorized: FreshBooksEmulator,
    cases: list[tuple[datetime, bool]],
    start: datetime,
    end: datetime,
    days: tuple[str, str],
) -> None:
    wanted = set()
    for i, (when, inside) in enumerate(cases):
        client = authorized.add_client(email=f"dst{i}@example.com", created_at=when - timedelta(days=30), updated=when)
        payment_client = client["id"]
        inv = authorized.add_invoice(
            customerid=payment_client, create_date=date(2025, 1, 1), amount="10.00", status="sent", updated=when
        )
        authorized.add_payment(invoiceid=inv["id"], amount="1.00", date=date(2025, 1, 2), updated=when)
        authorized.update("invoice", inv["id"], updated=when)  # the payment touched it; put it back
        if inside:
            wanted.add(f"dst{i}@example.com")
    h = hook()
    clients = list(h.iter_clients(updated_since=start, updated_until=end))
    assert {c.email for c in clients} == wanted
    assert all(start <= c.updated < end and c.updated.tzinfo is not None for c in clients)
    call = _list_calls(authorized, "/users/clients")[-1]
    assert (call.param("search[updated_min]"), call.param("search[updated_max]")) == days
    assert len(list(h.iter_invoices(start, end))) == len(wanted)
    assert len(list(h.iter_payments(start, end))) == len(wanted)


def test_open_sided_windows(authorized: FreshBooksEmulator) -> None:
    authorized.add_client(email="old@example.com", updated=_utc(2025, 1, 1, 12))
    authorized.add_client(email="new@example.com", updated=_utc(2025, 6, 1, 12))
    h = hook()
    assert [c.email for c in h.iter_clients(updated_since=_utc(2025, 3, 1))] == ["new@example.com"]
    call = _list_calls(authorized, "/users/clients")[-1]
    assert (
        call.param("search[updated_min]") == "2025-02-27"
    )  # 00:00Z Mar 1 is Feb 28 in Eastern, minus a day and call.param("search[updated_max]") is None
    assert [c.email for c in h.iter_clients(updated_until=_utc(2025, 3, 1))] == ["old@example.com"]


def test_naive_or_inverted_window_is_refused_at_the_call(authorized: FreshBooksEmulator) -> None:
    h = hook()
    with pytest.raises(ConfigError, match="timezone-aware"):
        h.iter_clients(updated_since=datetime(2025, 1, 1))
    with pytest.raises(ConfigError, match="before"):
        h.iter_payments(updated_since=_utc(2025, 2, 1), updated_until=_utc(2025, 1, 1))


def test_deleted_only_on_request_archived_always(authorized: FreshBooksEmulator) -> None:
    live = authorized.add_client(email="live@example.com")
    archived = authorized.add_client(email="archived@example.com", vis_state=2)
    gone = authorized.add_client(email="gone@example.com")
    authorized.delete("client", gone["id"])
    h = hook()
    default = {c.email: c for c in h.iter_clients()}
    assert set(default) == {"live@example.com", "archived@example.com"}
    assert default["archived@example.com"].vis_state == VisState.ARCHIVED
    everything = {c.email: c for c in h.iter_clients(include_deleted=True)}
    assert set(everything) == {"live@example.com", "archived@example.com", "gone@example.com"}
    assert everything["gone@example.com"].is_deleted
    assert {live["id"], archived["id"], gone["id"]} == {c.id for c in everything.values()}


def test_records_are_typed(authorized: FreshBooksEmulator) -> None:
    client = authorized.add_client(email="t@example.com", fname="Tess", organization="T Ltd")
    inv = authorized.add_invoice(
        customerid=client["id"], create_date=date(2025, 4, 1), due_offset_days=30, amount="1234.56", status="sent"
    )
    pay = authorized.add_payment(invoiceid=inv["id"], amount="234.56", date=date(2025, 4, 10))
    h = hook()
    invoice = h.get_invoice(inv["id"])
    assert invoice.amount.amount == Decimal("1234.56")
    assert invoice.amount.currency == "USD"
    assert invoice.outstanding.amount == Decimal("1000.00")
    assert invoice.paid.amount == Decimal("234.56")
    assert invoice.status == InvoiceStatus.PARTIAL
    assert (invoice.create_date, invoice.due_date) == (date(2025, 4, 1), date(2025, 5, 1))
    payment = h.get_payment(pay["id"])
    assert (payment.amount.amount, payment.date, payment.invoiceid) == (Decimal("234.56"), date(2025, 4, 10), inv["id"])
    got = h.get_client(client["id"])
    assert isinstance(got, Client)
    assert (got.fname, got.organization) == ("Tess", "T Ltd")


def test_invoices_by_id_and_by_invoice_date(authorized: FreshBooksEmulator) -> None:
    client = authorized.add_client(email="d@example.com")
    ids = {}
    for day in (date(2025, 4, 30), date(2025, 5, 1), date(2025, 5, 31), date(2025, 6, 1)):
        ids[day] = authorized.add_invoice(customerid=client["id"], create_date=day, amount="5.00", status="sent")["id"]
    h = hook()
    may = list(h.iter_invoices_by_date(date(2025, 5, 1), date(2025, 6, 1)))
    assert sorted(i.create_date for i in may) == [date(2025, 5, 1), date(2025, 5, 31)]
    wanted = [ids[date(2025, 4, 30)], ids[date(2025, 6, 1)]]
    assert sorted(i.id for i in h.iter_invoices(invoice_ids=wanted)) == sorted(wanted)
    call = _list_calls(authorized, "/invoices/invoices")[-1]
    assert sorted(call.query["search[invoiceids][]"]) == sorted(str(i) for i in wanted)


def test_get_missing_object_is_404_not_retried(authorized: FreshBooksEmulator) -> None:
    sleeps: list[float] = []
    with pytest.raises(ApiError) as err:
        hook(sleep=sleeps.append).get_invoice(999999)
    assert err.value.status == 404
    assert "Invoice not found" in str(err.value)
    assert len([c for c in authorized.calls if c.path.endswith("/invoices/invoices/999999")]) == 1
    assert sleeps == []
