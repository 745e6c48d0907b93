"""Records -> planned Marketo writes: which records, which dates, which keys, which fields."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sync_factories import client, invoice, payment

from airflow_provider_fbmkto.exceptions import ConfigError
from airflow_provider_fbmkto.sync.activities import (
    invoice_sent_activities,
    overdue_activities,
    payment_activities,
    sent_event_activity,
)
from airflow_provider_fbmkto.sync.health import PaymentStatus, summarize
from airflow_provider_fbmkto.sync.mapping import (
    SKIP_NO_EMAIL,
    company_payload,
    lead_payload,
    list_change,
    list_membership,
    plan_companies,
    plan_leads,
)
from airflow_provider_fbmkto.sync.matching import FREE_MAIL_DOMAINS, CompanyMatch, Rule, match_clients
from airflow_provider_fbmkto.sync.plan import (
    ActivityTypeNames,
    MappingContext,
    PlannedActivity,
    PlannedLead,
    PlannedListChange,
    Segments,
    Skipped,
)
from airflow_provider_fbmkto.sync.records import Invoice, InvoiceStatus, VisState
from airflow_provider_fbmkto.sync.window import Window

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
CTX = MappingContext(account="acme", fb_account_id="xZNQ1X", tz=NY)


def z(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


MAR_9 = Window(z(2025, 3, 9, 5), z(2025, 3, 10, 4))  # the New York day 2025-03-09 (23 hours)
MAR_10 = Window(z(2025, 3, 10, 4), z(2025, 3, 11, 4))
CLIENTS = {1: client(id=1, email="Ann@BigCo.io"), 2: client(id=2, email=""), 3: client(id=3, email="x@y.io")}


# ---------------------------------------------------------------- Invoice Sent


def test_invoice_sent_by_polling() -> None:
    invoices = [
        invoice(id=101, create_date=date(2025, 3, 9), due_date=date(2025, 4, 8), amount="1200.50", number="A-7"),
        invoice(id=102, create_date=date(2025, 3, 8)),
        invoice(id=103, create_date=date(2025, 3, 10)),
        invoice(id=104, create_date=date(2025, 3, 9), status=InvoiceStatus.DRAFT),
        invoice(id=105, create_date=date(2025, 3, 9), vis_state=VisState.DELETED),
        invoice(id=106, create_date=date(2025, 3, 9), customerid=2),  # client without e-mail
        invoice(id=107, create_date=date(2025, 3, 9), customerid=99),  # client not fetched
        invoice(id=108, create_date=date(2025, 3, 9), status=InvoiceStatus.PAID, outstanding="0.00"),
    ]
    plan = invoice_sent_activities(invoices, CLIENTS, MAR_9, CTX)
    assert [a.key for a in plan.items] == ["invoice_sent:acme:101", "invoice_sent:acme:108"]
    first = plan.items[0]
    assert first.lead_email == "ann@bigco.io"
    assert first.activity_type == "fbInvoiceSent"
    assert first.activity_date.isoformat() == "2025-03-09T00:00:00-05:00"
    assert first.primary_attribute_value == "A-7"
    assert dict(first.attributes) == {
        "fbAccountId": "xZNQ1X", "amount": "1200.50", "currency": "USD", "dueDate": "2025-04-08",
    }  # fmt: skip
    assert [(s.key, s.reason) for s in plan.skipped] == [
        ("invoice_sent:acme:106", "client 2 has no e-mail"),
        ("invoice_sent:acme:107", "client 99 is not among the records of this run"),
    ]


def test_invoice_sent_uses_the_day_start_after_the_dst_change() -> None:
    plan = invoice_sent_activities([invoice(id=1, create_date=date(2025, 3, 10))], CLIENTS, MAR_10, CTX)
    assert plan.items[0].activity_date.isoformat() == "2025-03-10T00:00:00-04:00"


def test_invoice_sent_from_a_webhook_event_is_dated_at_the_event() -> None:
    inv = invoice(id=101, create_date=date(2025, 1, 2))
    act = sent_event_activity(inv, datetime(2025, 3, 9, 14, 3, 22, 123456, tzinfo=UTC), CLIENTS, CTX)
    assert isinstance(act, PlannedActivity)
    assert act.key == "invoice_sent:acme:101"  # the same key as polling: one activity per invoice
    assert act.activity_date.isoformat() == "2025-03-09T14:03:22+00:00"
    gone = sent_event_activity(invoice(id=5, vis_state=VisState.DELETED), z(2025, 3, 9), CLIENTS, CTX)
    assert isinstance(gone, Skipped)
    assert gone.key == "invoice_sent:acme:5"
    assert "deleted" in gone.reason


# ---------------------------------------------------------------- Payment Received


def test_payment_activities() -> None:
    invoices = {7: invoice(id=7, number="INV-0007")}
    payments = [
        payment(id=501, invoiceid=7, amount="250.00", on=date(2025, 3, 10)),
        payment(id=502, invoiceid=8, amount="10", on=date(2025, 3, 10)),  # invoice unknown: no invoiceNumber
        payment(id=503, on=date(2025, 3, 9)),
        payment(id=504, on=date(2025, 3, 10), vis_state=VisState.DELETED),
        payment(id=505, on=date(2025, 3, 10), clientid=2),
    ]
    plan = payment_activities(payments, CLIENTS, invoices, MAR_10, CTX)
    assert [a.key for a in plan.items] == ["payment_received:acme:501", "payment_received:acme:502"]
    first = plan.items[0]
    assert first.activity_type == "fbPaymentReceived"
    assert first.primary_attribute_value == "501"
    assert first.activity_date.isoformat() == "2025-03-10T00:00:00-04:00"
    assert dict(first.attributes) == {
        "fbAccountId": "xZNQ1X", "amount": "250.00", "currency": "USD", "invoiceNumber": "INV-0007",
    }  # fmt: skip
    assert "invoiceNumber" not in dict(plan.items[1].attributes)
    assert [s.key for s in plan.skipped] == ["payment_received:acme:505"]


# ---------------------------------------------------------------- Invoice Overdue


def due_mar_9(**kw: Any) -> Invoice:
    return invoice(create_date=date(2025, 2, 7), due_date=date(2025, 3, 9), **kw)


def test_overdue_activity_dated_at_the_overdue_moment() -> None:
    plan = overdue_activities([due_mar_9(id=5, number="INV-5")], CLIENTS, MAR_10, CTX)
    (act,) = plan.items
    assert act.key == "invoice_overdue:acme:5:2025-03-09"
    assert act.activity_type == "fbInvoiceOverdue"
    assert act.activity_date == z(2025, 3, 10, 4)
    assert act.activity_date.isoformat() == "2025-03-10T00:00:00-04:00"
    assert act.primary_attribute_value == "INV-5"
    assert dict(act.attributes) == {
        "fbAccountId": "xZNQ1X", "amount": "100.00", "currency": "USD", "dueDate": "2025-03-09", "daysOverdue": "1",
    }  # fmt: skip
    assert overdue_activities([due_mar_9(id=5)], CLIENTS, MAR_9, CTX).items == ()  # not yet overdue on the 9th


@pytest.mark.parametrize(
    ("kwargs", "emitted"),
    [
        ({"outstanding": "0.00", "date_paid": date(2025, 3, 10)}, False),  # paid inside the window
        ({"outstanding": "0.00", "date_paid": date(2025, 3, 11)}, True),  # paid after it (seen in a backfill)
        ({"outstanding": "30.00"}, True),
        ({"status": InvoiceStatus.DRAFT}, False),
    ],
    ids=["paid-in-window", "paid-after-window", "partly-paid", "draft"],
)
def test_overdue_only_when_still_unpaid_at_the_window_end(kwargs: dict[str, Any], emitted: bool) -> None:
    plan = overdue_activities([due_mar_9(id=5, **kwargs)], CLIENTS, MAR_10, CTX)
    assert bool(plan.items) is emitted


def test_overdue_amount_is_the_balance_at_the_overdue_moment() -> None:
    inv = due_mar_9(id=5, amount="300.00", outstanding="0.00", date_paid=date(2025, 3, 20))
    pays = [payment(id=1, invoiceid=5, amount="100.00", on=date(2025, 3, 1)),
            payment(id=2, invoiceid=5, amount="200.00", on=date(2025, 3, 20))]  # fmt: skip
    march = Window(z(2025, 3, 1, 5), z(2025, 4, 1, 4))
    # paid on the 20th, but the March window ends after that -> not emitted for March ...
    assert overdue_activities([inv], CLIENTS, march, CTX, pays).items == ()
    # ... while a window covering only the 10th (backfilled later) still sees it, for the 200 then open.
    (act,) = overdue_activities([inv], CLIENTS, MAR_10, CTX, pays).items
    assert act.attribute("amount") == "200.00"


def test_overdue_once_per_due_date() -> None:
    a = overdue_activities([due_mar_9(id=5)], CLIENTS, MAR_10, CTX).items[0]
    moved = invoice(id=5, create_date=date(2025, 2, 7), due_date=date(2025, 3, 20))
    window = Window(z(2025, 3, 21, 4), z(2025, 3, 22, 4))
    b = overdue_activities([moved], CLIENTS, window, CTX).items[0]
    assert a.key != b.key
    assert b.key == "invoice_overdue:acme:5:2025-03-20"


def test_activity_type_names_are_configurable() -> None:
    ctx = MappingContext("acme", "xZNQ1X", NY, ActivityTypeNames(invoice_sent="mySent"))
    plan = invoice_sent_activities([invoice(id=1, create_date=date(2025, 3, 9))], CLIENTS, MAR_9, ctx)
    assert plan.items[0].activity_type == "mySent"


def test_marketo_input() -> None:
    (act,) = overdue_activities([due_mar_9(id=5, number="INV-5")], CLIENTS, MAR_10, CTX).items
    body = act.marketo_input(lead_id=77, type_ids={"fbInvoiceOverdue": 100003})
    assert body == {
        "leadId": 77,
        "activityDate": "2025-03-10T00:00:00-04:00",
        "activityTypeId": 100003,
        "primaryAttributeValue": "INV-5",
        "attributes": [
            {"apiName": "amount", "value": "100.00"},
            {"apiName": "currency", "value": "USD"},
            {"apiName": "daysOverdue", "value": "1"},
            {"apiName": "dueDate", "value": "2025-03-09"},
            {"apiName": "fbAccountId", "value": "xZNQ1X"},
        ],
    }
    with pytest.raises(ConfigError, match="setup-marketo"):
        act.marketo_input(lead_id=77, type_ids={})


records = st.lists(
    st.builds(
        lambda i, created, term, cid, paid: invoice(
            id=i, customerid=cid, create_date=date(2025, 3, 1) + timedelta(days=created),
            due_date=date(2025, 3, 1) + timedelta(days=created + term),
            outstanding="0.00" if paid else None,
            date_paid=date(2025, 3, 1) + timedelta(days=created + 3) if paid else None,
        ),
        st.integers(1, 500), st.integers(0, 20), st.sampled_from([0, 5, 30]), st.sampled_from([1, 2, 3, 4]),
        st.booleans(),
    ),
    max_size=15, unique_by=lambda inv: inv.id,
)  # fmt: skip


@settings(max_examples=50)
@given(records, st.randoms(use_true_random=False))
def test_mapping_is_deterministic_and_order_independent(invoices: list[Invoice], rnd: random.Random) -> None:
    window = Window(z(2025, 3, 5, 5), z(2025, 3, 15, 4))
    shuffled = list(invoices)
    rnd.shuffle(shuffled)
    for plan_fn in (invoice_sent_activities, overdue_activities):
        a, b = plan_fn(invoices, CLIENTS, window, CTX), plan_fn(shuffled, CLIENTS, window, CTX)
        assert a == b
        assert [x.payload_hash() for x in a.items] == [x.payload_hash() for x in b.items]
        assert len({x.key for x in a.items}) == len(a.items)
        assert all(window.contains(x.activity_date) for x in a.items)


# ---------------------------------------------------------------- leads, companies, lists


def test_lead_payload() -> None:
    inv = invoice(id=1, create_date=date(2025, 3, 1), due_date=date(2025, 3, 31), amount="120.00")
    s = summarize([inv], as_of=z(2025, 3, 5), tz=NY)
    match = CompanyMatch("bigco-holdings", "BigCo Holdings", "bigco.io", 0)
    lead = lead_payload(" Ann@BigCo.io", client(id=1, fname=" Ann ", lname="Lee"), s, match, CTX)
    assert lead.key == "lead:acme:ann@bigco.io"
    assert lead.record() == {
        "email": "ann@bigco.io",
        "firstName": "Ann",
        "lastName": "Lee",
        "externalCompanyId": "fbmkto:bigco-holdings",
        "fbPaymentStatus": "current",
        "fbOutstandingBalance": "120.00",
        "fbLastPaymentDate": None,
    }
    assert "externalCompanyId" not in lead_payload("a@gmail.com", client(), s, None, CTX).record()


def test_plan_leads_one_per_email_and_skips_with_reasons() -> None:
    clients = [
        client(id=1, email="Ann@bigco.io", fname="Ann"),
        client(id=4, email="ann@BIGCO.io", fname="Annie"),  # same person, second FreshBooks client
        client(id=2, email=""),
        client(id=3, email="gone@bigco.io", vis_state=VisState.DELETED),
    ]
    invoices = [
        invoice(id=10, customerid=1, create_date=date(2025, 3, 1), outstanding="0.00", date_paid=date(2025, 3, 2)),
        invoice(id=11, customerid=4, create_date=date(2025, 1, 1), due_date=date(2025, 1, 31), amount="50.00"),
    ]
    plan = plan_leads(clients, invoices, [], {}, as_of=z(2025, 3, 5), ctx=CTX)
    (lead,) = plan.items
    record = lead.record()
    assert (record["email"], record["firstName"]) == ("ann@bigco.io", "Ann")  # lowest client id names it
    assert record["fbPaymentStatus"] == "overdue"  # client 4's invoice counts for the shared lead
    assert record["fbOutstandingBalance"] == "50.00"
    assert sorted((s.key, s.reason) for s in plan.skipped) == [
        ("client:acme:2", SKIP_NO_EMAIL),
        ("lead:acme:gone@bigco.io", "client is deleted in FreshBooks; its Marketo lead is left as it is"),
    ]


def test_company_payload_and_plan() -> None:
    rules = (Rule(company="BigCo Holdings", domain="bigco.io"),)
    clients = [client(id=1, email="a@bigco.io"), client(id=2, email="b@bigco.io"), client(id=3, email="c@gmail.com")]
    invoices = [
        invoice(id=1, customerid=1, create_date=date(2025, 1, 1), due_offset_days=30, outstanding="0.00",
                date_paid=date(2025, 1, 21)),
        invoice(id=2, customerid=2, create_date=date(2025, 2, 1), due_date=date(2025, 3, 3), amount="75.25"),
        invoice(id=3, customerid=2, create_date=date(2025, 2, 2), status=InvoiceStatus.DRAFT),
        invoice(id=4, customerid=3, create_date=date(2025, 2, 2)),
    ]  # fmt: skip
    matches = match_clients(clients, rules, FREE_MAIL_DOMAINS)
    plan = plan_companies(clients, invoices, [payment(id=9, invoiceid=1, on=date(2025, 1, 21))], matches,
                          as_of=z(2025, 2, 10), ctx=CTX)  # fmt: skip
    (company,) = plan.items
    assert company.key == "company:acme:bigco-holdings"
    assert company.record() == {
        "externalCompanyId": "fbmkto:bigco-holdings",
        "company": "BigCo Holdings",
        "website": "bigco.io",
        "fbPaymentTerms": "Net 30",
        "fbOutstandingBalance": "75.25",
        "fbInvoiceCount": 2,
        "fbPaymentStatus": "current",
        "fbLastPaymentDate": "2025-01-21",
        "fbAverageDaysToPay": "20.0",
    }
    no_site = company_payload(CompanyMatch("smallco", "SmallCo", None, 1), summarize([], as_of=z(2025, 1, 1), tz=NY),
                              CTX)  # fmt: skip
    assert "website" not in no_site.record()
    assert no_site.record()["fbPaymentStatus"] == "none"


@pytest.mark.parametrize(
    ("status", "add", "remove"),
    [
        (PaymentStatus.PAID, (1001,), (1002,)),
        (PaymentStatus.OVERDUE, (1002,), (1001,)),
        (PaymentStatus.CURRENT, (), (1001, 1002)),
        (PaymentStatus.PARTIAL, (), (1001, 1002)),
        (PaymentStatus.NONE, (), (1001, 1002)),
    ],
)
def test_list_membership_mirrors_status(status: PaymentStatus, add: tuple[int, ...], remove: tuple[int, ...]) -> None:
    assert list_membership(status, Segments(paid_list_id=1001, overdue_list_id=1002)) == (add, remove)


def test_list_membership_with_one_list() -> None:
    assert list_membership(PaymentStatus.PAID, Segments(overdue_list_id=1002)) == ((), (1002,))
    assert list_membership(PaymentStatus.OVERDUE, Segments(overdue_list_id=1002)) == ((1002,), ())


def _lead(status: PaymentStatus) -> PlannedLead:
    return PlannedLead("lead:acme:a@b.io", "a@b.io", status, (("email", "a@b.io"),))


def test_list_change_hash_changes_only_between_segments() -> None:
    seg = Segments(paid_list_id=1001, overdue_list_id=1002, on_paid_campaign_id=7, on_overdue_campaign_id=8)
    changes: dict[PaymentStatus, PlannedListChange] = {}
    for s in PaymentStatus:
        change = list_change(_lead(s), seg, CTX)
        assert change is not None
        changes[s] = change
    assert changes[PaymentStatus.PAID].key == "list:acme:a@b.io"
    assert changes[PaymentStatus.PAID].campaigns == (7,)
    assert changes[PaymentStatus.OVERDUE].campaigns == (8,)
    assert changes[PaymentStatus.CURRENT].campaigns == ()
    hashes = {s: c.payload_hash() for s, c in changes.items()}
    assert hashes[PaymentStatus.CURRENT] == hashes[PaymentStatus.PARTIAL] == hashes[PaymentStatus.NONE]
    assert len({hashes[PaymentStatus.PAID], hashes[PaymentStatus.OVERDUE], hashes[PaymentStatus.CURRENT]}) == 3
    assert list_change(_lead(PaymentStatus.PAID), Segments(), CTX) is None
    campaigns_only = list_change(_lead(PaymentStatus.PAID), Segments(on_paid_campaign_id=7), CTX)
    assert campaigns_only is not None
    assert campaigns_only.add_to == ()
    assert campaigns_only.campaigns == (7,)


def test_lead_hash_ignores_input_order_but_not_values() -> None:
    s1 = summarize([invoice(id=1, amount="10.0")], as_of=z(2025, 3, 5), tz=NY)
    s2 = summarize([invoice(id=1, amount="10.00")], as_of=z(2025, 3, 5), tz=NY)
    s3 = summarize([invoice(id=1, amount="10.01")], as_of=z(2025, 3, 5), tz=NY)
    h = [lead_payload("a@b.io", client(), s, None, CTX).payload_hash() for s in (s1, s2, s3)]
    assert h[0] == h[1] != h[2]
    assert Decimal("10.0") == Decimal("10.00")
