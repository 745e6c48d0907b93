"""The FreshBooks mirror in the state DB, on SQLite and PostgreSQL: upserts, range reads, streaming."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from airflow_provider_fbmkto.state import FreshBooksMirror, StateDB
from airflow_provider_fbmkto.sync.records import Client, Invoice, InvoiceStatus, Money, Payment, VisState

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
ACCT = "acme"


def client(cid: int, *, email: str | None = None, vis: VisState = VisState.ACTIVE, fname: str = "Ann") -> Client:
    return Client(cid, email or f"c{cid}@example.com", fname, "Lee", f"Org {cid}", "USD", T0, vis)


def invoice(
    iid: int,
    cid: int,
    *,
    created: date = date(2025, 3, 10),
    due: date = date(2025, 4, 9),
    outstanding: str = "100.00",
    vis: VisState = VisState.ACTIVE,
) -> Invoice:
    return Invoice(
        id=iid,
        invoice_number=f"INV-{iid}",
        customerid=cid,
        create_date=created,
        due_date=due,
        due_offset_days=(due - created).days,
        amount=Money(Decimal("100.00"), "USD"),
        outstanding=Money(Decimal(outstanding), "USD"),
        paid=Money(Decimal("100.00") - Decimal(outstanding), "USD"),
        status=InvoiceStatus.SENT,
        v3_status="sent",
        payment_status="unpaid",
        date_paid=None,
        updated=T0,
        vis_state=vis,
    )


def payment(pid: int, iid: int, cid: int, *, on: date = date(2025, 3, 20), vis: VisState = VisState.ACTIVE) -> Payment:
    return Payment(pid, iid, cid, Money(Decimal("25.00"), "USD"), on, "Check", T0, vis)


def test_upsert_replaces_the_stored_record(state_db: StateDB) -> None:
    mirror = FreshBooksMirror(state_db)
    mirror.upsert(ACCT, [invoice(1, 10, due=date(2025, 4, 1))])
    mirror.upsert(ACCT, [invoice(1, 10, due=date(2025, 5, 1), outstanding="40.00")])

    assert mirror.count(ACCT, "invoice") == 1
    # The indexed columns moved with the record: the old due date no longer finds it.
    assert list(mirror.invoices_due(ACCT, date(2025, 4, 1), date(2025, 4, 1))) == []
    (found,) = mirror.invoices_due(ACCT, date(2025, 5, 1), date(2025, 5, 1))
    assert found.outstanding.amount == Decimal("40.00")


def test_last_write_wins_within_one_call(state_db: StateDB) -> None:
    mirror = FreshBooksMirror(state_db)
    written = mirror.upsert(ACCT, [client(5, fname="Old"), client(6), client(5, fname="New")])
    assert written == 2
    by_id = {c.id: c for c in mirror.clients(ACCT)}
    assert sorted(by_id) == [5, 6]
    assert by_id[5].fname == "New"


def test_counts_per_kind_and_account(state_db: StateDB) -> None:
    mirror = FreshBooksMirror(state_db)
    # The same id under different kinds and accounts are different records.
    mirror.upsert(ACCT, [client(7), client(8), invoice(7, 7), payment(7, 7, 7)])
    mirror.upsert("other", [client(7)])

    assert mirror.count(ACCT) == 4
    assert mirror.count(ACCT, "client") == 2
    assert mirror.count(ACCT, "invoice") == 1
    assert mirror.count(ACCT, "payment") == 1
    assert mirror.count("other") == 1
    assert mirror.count("nobody") == 0
    assert [c.id for c in mirror.clients("other")] == [7]


def test_invoices_created_range_is_inclusive(state_db: StateDB) -> None:
    mirror = FreshBooksMirror(state_db)
    days = [date(2025, 2, 28), date(2025, 3, 1), date(2025, 3, 15), date(2025, 3, 31), date(2025, 4, 1)]
    mirror.upsert(ACCT, [invoice(100 + i, 1, created=d, due=d + timedelta(days=30)) for i, d in enumerate(days)])

    got = list(mirror.invoices_created(ACCT, date(2025, 3, 1), date(2025, 3, 31)))
    assert [i.id for i in got] == [101, 102, 103]
    assert [i.create_date for i in got] == days[1:4]
    assert list(mirror.invoices_created("other", date(2025, 3, 1), date(2025, 3, 31))) == []


def test_invoices_due_range_is_inclusive(state_db: StateDB) -> None:
    mirror = FreshBooksMirror(state_db)
    dues = {201: date(2025, 3, 31), 202: date(2025, 4, 1), 203: date(2025, 4, 2), 204: date(2025, 4, 3)}
    mirror.upsert(ACCT, [invoice(i, 1, created=date(2025, 3, 1), due=d) for i, d in dues.items()])
    mirror.upsert(ACCT, [payment(202, 201, 1, on=date(2025, 4, 1))])  # a payment id equal to an invoice id

    assert [i.id for i in mirror.invoices_due(ACCT, date(2025, 4, 1), date(2025, 4, 2))] == [202, 203]
    assert [i.id for i in mirror.invoices_due(ACCT, date(2025, 4, 3), date(2025, 4, 3))] == [204]


def test_invoices_due_created_outside_leaves_out_those_created_in_the_range(state_db: StateDB) -> None:
    mirror = FreshBooksMirror(state_db)
    created = {301: date(2025, 2, 28), 302: date(2025, 3, 1), 303: date(2025, 3, 31), 304: date(2025, 4, 1)}
    mirror.upsert(ACCT, [invoice(i, 1, created=c, due=date(2025, 4, 2)) for i, c in created.items()])

    span = (date(2025, 3, 1), date(2025, 3, 31))
    due = mirror.invoices_due(ACCT, date(2025, 4, 2), date(2025, 4, 2), created_outside=span)
    assert [i.id for i in due] == [301, 304]  # the span's bounds are inside it, as with invoices_created
    assert [i.id for i in mirror.invoices_due(ACCT, date(2025, 4, 2), date(2025, 4, 2))] == [301, 302, 303, 304]


def test_payments_dated_range_is_inclusive(state_db: StateDB) -> None:
    mirror = FreshBooksMirror(state_db)
    mirror.upsert(
        ACCT,
        [
            payment(1, 50, 1, on=date(2025, 2, 28)),
            payment(2, 50, 1, on=date(2025, 3, 1)),
            payment(3, 51, 2, on=date(2025, 3, 31)),
            payment(4, 51, 2, on=date(2025, 4, 1)),
            invoice(5, 1, created=date(2025, 3, 5)),  # not a payment, although dated in the range
        ],
    )
    got = list(mirror.payments_dated(ACCT, date(2025, 3, 1), date(2025, 3, 31)))
    assert [p.id for p in got] == [2, 3]
    assert all(isinstance(p, Payment) for p in got)


def test_of_clients_returns_all_invoices_and_payments_of_those_clients(state_db: StateDB) -> None:
    mirror = FreshBooksMirror(state_db)
    mirror.upsert(
        ACCT,
        [
            client(1),
            client(2),
            client(3),
            invoice(11, 1),
            invoice(12, 1, created=date(2020, 1, 1)),  # old records count too: no date filter here
            invoice(21, 2),
            invoice(31, 3),
            payment(111, 11, 1),
            payment(211, 21, 2),
            payment(311, 31, 3, on=date(2019, 5, 5)),
        ],
    )
    mirror.upsert("other", [invoice(41, 1), payment(411, 41, 1)])

    # Many ids (more than one IN-list chunk), most of them unknown.
    invoices, payments = mirror.of_clients(ACCT, [1, 3, *range(1000, 2200)])
    assert sorted(i.id for i in invoices) == [11, 12, 31]
    assert sorted(p.id for p in payments) == [111, 311]
    assert mirror.of_clients(ACCT, []) == ([], [])


def test_deleted_records_are_kept_with_their_vis_state(state_db: StateDB) -> None:
    mirror = FreshBooksMirror(state_db)
    mirror.upsert(ACCT, [client(1), invoice(11, 1), payment(111, 11, 1)])
    mirror.upsert(
        ACCT,
        [
            client(1, vis=VisState.DELETED),
            invoice(11, 1, vis=VisState.DELETED),
            payment(111, 11, 1, vis=VisState.ARCHIVED),
        ],
    )

    assert mirror.count(ACCT) == 3
    (c,) = mirror.clients(ACCT)
    assert c.vis_state is VisState.DELETED
    (inv,) = mirror.invoices_created(ACCT, date(2025, 3, 10), date(2025, 3, 10))
    assert inv.is_deleted
    (pay,) = mirror.payments_dated(ACCT, date(2025, 3, 20), date(2025, 3, 20))
    assert pay.vis_state is VisState.ARCHIVED


def test_streams_past_the_page_size_without_duplicates_or_gaps(state_db: StateDB) -> None:
    mirror = FreshBooksMirror(state_db)
    # 4,501 rows: more than two pages of 2,000; ids are sparse and inserted out of order.
    ids = [7 + 3 * n for n in range(4501)]
    shuffled = ids[1::2] + ids[0::2]
    mirror.upsert(ACCT, (payment(pid, 1, pid % 50, on=date(2025, 3, 1 + pid % 28)) for pid in shuffled))
    mirror.upsert(ACCT, (client(cid) for cid in shuffled))
    # Rows of another kind and account with the same ids must not leak into the stream.
    mirror.upsert("other", (payment(pid, 1, 1) for pid in ids[:2500]))

    assert mirror.count(ACCT, "payment") == 4501
    streamed = [p.id for p in mirror.payments_dated(ACCT, date(2025, 3, 1), date(2025, 3, 31))]
    # every row once, in (date, id) order: date ranges page along the date index
    assert streamed == sorted(ids, key=lambda pid: (pid % 28, pid))
    assert [c.id for c in mirror.clients(ACCT)] == ids

    # A range that keeps about a third of them still pages correctly.
    wanted = sorted((pid for pid in ids if 1 <= pid % 28 <= 9), key=lambda pid: (pid % 28, pid))
    got = [p.id for p in mirror.payments_dated(ACCT, date(2025, 3, 2), date(2025, 3, 10))]
    assert got == wanted
    # Many rows on one date (a page boundary inside a date): still each once.
    mirror.upsert(ACCT, (payment(pid, 1, 1, on=date(2025, 4, 1)) for pid in range(100_000, 104_500)))
    same_day = [p.id for p in mirror.payments_dated(ACCT, date(2025, 4, 1), date(2025, 4, 1))]
    assert same_day == list(range(100_000, 104_500))


def test_client_contacts_and_invoice_numbers_are_read_out_of_the_stored_records(state_db: StateDB) -> None:
    # The activity passes read only these parts of large accounts' clients and invoices: they must say what the
    # whole records say (a deleted client, a non-ASCII or blank e-mail, a record of another account or kind).
    mirror = FreshBooksMirror(state_db)
    mirror.upsert(
        ACCT,
        [
            client(1, email="Zoë@Example.com"),
            client(2, vis=VisState.DELETED),
            Client(3, "", "Bo", "Ng", "", "USD", T0, VisState.ARCHIVED),
            invoice(7, 1),
            payment(7, 7, 1),
        ],
    )
    mirror.upsert("other", [client(4), invoice(8, 4)])

    contacts = mirror.client_contacts(ACCT, [1, 2, 3, 4, 7])
    whole = mirror.clients_by_ids(ACCT, [1, 2, 3])
    assert sorted(contacts) == [1, 2, 3]  # 4 is another account's, 7 a payment's and an invoice's id
    for cid, contact in contacts.items():
        assert (contact.id, contact.email, contact.vis_state) == (cid, whole[cid].email, whole[cid].vis_state)
    assert [contacts[i].is_deleted for i in (1, 2, 3)] == [False, True, False]
    assert contacts[1].email == "Zoë@Example.com"
    numbers = mirror.invoice_numbers(ACCT, [7, 8])
    assert {i: n.invoice_number for i, n in numbers.items()} == {7: "INV-7"}
