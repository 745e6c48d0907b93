"""Data at the edges through real DAG runs: DST changes, month and year ends, deleted and archived FreshBooks
records, several currencies. Expected activity moments are written out by hand (UTC), not computed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.e2e.conftest import World, day
from tests.reliability.conftest import (
    OVERDUE,
    PAID,
    SENT,
    UTC,
    Act,
    Figures,
    Tally,
    open_world,
    paid,
    sent,
)

pytestmark = pytest.mark.e2e

EASTERN = """\
accounts:
  - name: acme
    freshbooks_conn_id: freshbooks_acme
    marketo_conn_id: marketo_default
    schedule: "@daily"
    timezone: America/New_York
    start_date: "2024-12-01"
    retries: 0
"""

#: Two manual windows bounded by Eastern midnights (offsets written out by hand): from the last day of 2024 up to
#: the 23-hour spring-forward day, and from that day to the day after the 25-hour fall-back day.
WINDOWS = [
    ("2024-12-31T00:00:00-05:00", "2025-03-09T00:00:00-05:00"),
    ("2025-03-09T00:00:00-05:00", "2025-11-03T00:00:00-05:00"),
]


def z(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_dst_month_and_year_ends_land_each_record_once_at_its_eastern_midnight(
    airflow_home, tmp_path, figures: Figures
):
    with open_world(airflow_home, tmp_path, EASTERN) as w:
        email = "dst@hooli.io"
        c = w.fb.add_client(fname="Dee", lname="Est", email=email)

        def inv(create: str, due_days: int) -> dict[str, Any]:
            return w.fb.add_invoice(customerid=c["id"], create_date=create, due_offset_days=due_days, amount="10.00")

        i1 = inv("2024-12-30", 1)  # before the first window: no Invoice Sent; due 12-31 -> overdue 01-01
        i2 = inv("2024-12-31", 0)  # year end; due on receipt -> overdue 01-01
        i3 = inv("2025-01-31", 1)  # month end; due 02-01 -> overdue 02-02
        i4 = inv("2025-02-28", 8)  # month end; due 03-08 -> overdue at the start of the spring-forward day
        i5 = inv("2025-03-01", 8)  # due 03-09 -> overdue at the start of 03-10 (EDT)
        i6 = inv("2025-03-09", 30)  # the 23-hour day; paid the same day
        p1 = w.fb.add_payment(invoiceid=i6["id"], amount="10.00", date="2025-03-09")
        i7 = inv("2025-03-10", 30)  # paid on the fall-back day: not overdue at its window's end
        p2 = w.fb.add_payment(invoiceid=i7["id"], amount="10.00", date="2025-11-02")
        i8 = inv("2025-11-01", 0)  # due 11-01 -> overdue at the start of the 25-hour day (EDT midnight)
        i9 = inv("2025-11-02", 0)  # the 25-hour day; overdue at 11-03 00:00 EST = the last window's end: none
        inv("2025-11-03", 30)  # the last window's end date: outside every window
        n = lambda i: str(i["invoice_number"])  # noqa: E731
        expect = Tally(
            {
                Act(email, SENT, n(i2), z("2024-12-31T05:00:00")),
                Act(email, SENT, n(i3), z("2025-01-31T05:00:00")),
                Act(email, SENT, n(i4), z("2025-02-28T05:00:00")),
                Act(email, SENT, n(i5), z("2025-03-01T05:00:00")),
                Act(email, SENT, n(i6), z("2025-03-09T05:00:00")),  # midnight EST: DST starts at 2 am
                Act(email, SENT, n(i7), z("2025-03-10T04:00:00")),  # midnight EDT
                Act(email, SENT, n(i8), z("2025-11-01T04:00:00")),
                Act(email, SENT, n(i9), z("2025-11-02T04:00:00")),  # midnight EDT: DST ends at 2 am
                Act(email, PAID, str(p1["id"]), z("2025-03-09T05:00:00")),
                Act(email, PAID, str(p2["id"]), z("2025-11-02T04:00:00")),
                Act(email, OVERDUE, n(i1), z("2025-01-01T05:00:00")),
                Act(email, OVERDUE, n(i2), z("2025-01-01T05:00:00")),
                Act(email, OVERDUE, n(i3), z("2025-02-02T05:00:00")),
                Act(email, OVERDUE, n(i4), z("2025-03-09T05:00:00")),
                Act(email, OVERDUE, n(i5), z("2025-03-10T04:00:00")),
                Act(email, OVERDUE, n(i8), z("2025-11-02T04:00:00")),
            },
            {email},
            {"fbmkto:hooli.io"},
        )
        per_window = []
        for start, end in WINDOWS:
            before = len(w.mkto.activities())
            w.ok(day(0), conf={"window_start": start, "window_end": end})
            per_window.append(len(w.mkto.activities()) - before)
        # by hand: 12-31..03-08 -> sent i2 i3 i4 i5, overdue i1 i2 i3;
        # 03-09..11-02 -> sent i6 i7 i8 i9, paid p1 p2, overdue i4 i5 i8
        assert per_window == [7, 9]
        counts = expect.check(w)
        figures.row(
            "dst_month_year",
            order=150,
            row="Timestamps at DST changes (23 h and 25 h days) and month/year ends (America/New_York)",
            faults={"window edges: 2024-12-31, 2025-03-09 (spring forward), 2025-11-03 (after fall back)": 3},
            runs=2,
            counts=counts,
            outcome="every record in exactly one window, dated at its Eastern midnight (05:00Z EST / 04:00Z EDT); "
            "records on an edge's far side in none",
        )


def _attrs(activity: dict[str, Any]) -> dict[str, Any]:
    return {a.get("apiName") or a.get("name"): a["value"] for a in activity["attributes"]}


def _company(w: World, external_id: str) -> dict[str, Any]:
    (company,) = [c for c in w.mkto.companies() if c["externalCompanyId"] == external_id]
    return company


def test_deleted_and_archived_records_and_several_currencies(airflow_home, tmp_path, figures: Figures):
    """Deleted FreshBooks records write nothing and delete nothing; archived ones are live; every activity
    carries its own currency and summaries never add amounts across currencies."""
    with open_world(airflow_home, tmp_path) as w:
        fb = w.fb
        usd = fb.add_client(fname="Uma", lname="Sd", email="usd@acme-corp.io")
        eur = fb.add_client(fname="Eve", lname="Ur", email="eur@eurofirm.de", currency_code="EUR")
        cad = fb.add_client(fname="Cal", lname="Ad", email="cad@mapleco.ca", currency_code="CAD")
        arch = fb.add_client(fname="Arc", lname="Hive", email="arch@oldco.io", vis_state=2)  # archived
        gone = fb.add_client(fname="Del", lname="Eted", email="del@goneco.io")
        d5 = day(5).isoformat()

        a = fb.add_invoice(customerid=usd["id"], create_date=d5, amount="100.00")
        e = fb.add_invoice(customerid=usd["id"], create_date=d5, amount="50.00", vis_state=2)  # archived invoice
        deleted_inv = fb.add_invoice(customerid=usd["id"], create_date=d5, amount="999.00")
        fb.delete("invoice", deleted_inv["id"])
        wrong_pay = fb.add_payment(invoiceid=a["id"], amount="1.00", date=d5)
        fb.delete("payment", wrong_pay["id"])
        b = fb.add_invoice(customerid=eur["id"], create_date=d5, amount="200.00")
        old_eur = fb.add_invoice(customerid=eur["id"], create_date=day(40).isoformat(), amount="70.00")
        p_eur = fb.add_payment(invoiceid=old_eur["id"], amount="70.00", date=d5)
        cc = fb.add_invoice(customerid=cad["id"], create_date=d5, amount="300.00")
        ar = fb.add_invoice(customerid=arch["id"], create_date=d5, amount="40.00")
        fb.add_invoice(customerid=gone["id"], create_date=d5, amount="60.00")
        fb.delete("client", gone["id"])
        assert b["currency_code"] == "EUR"
        assert cc["currency_code"] == "CAD"

        expect = Tally(
            {
                sent("usd@acme-corp.io", a),
                sent("usd@acme-corp.io", e),
                sent("eur@eurofirm.de", b),
                paid("eur@eurofirm.de", p_eur),
                sent("cad@mapleco.ca", cc),
                sent("arch@oldco.io", ar),
            },
            {"usd@acme-corp.io", "eur@eurofirm.de", "cad@mapleco.ca", "arch@oldco.io"},
            {"fbmkto:acme-corp.io", "fbmkto:eurofirm.de", "fbmkto:mapleco.ca", "fbmkto:oldco.io"},
        )
        w.ok(day(4))
        expect.check(w)
        by_primary = {str(x.get("primaryAttributeValue")): _attrs(x) for x in w.mkto.activities()}
        got = {
            k: (float(v["amount"]), v["currency"])
            for k, v in by_primary.items()
            if k in {a["invoice_number"], b["invoice_number"], cc["invoice_number"], str(p_eur["id"])}
        }
        assert got == {
            a["invoice_number"]: (100.0, "USD"),
            b["invoice_number"]: (200.0, "EUR"),
            cc["invoice_number"]: (300.0, "CAD"),
            str(p_eur["id"]): (70.0, "EUR"),
        }
        acme = _company(w, "fbmkto:acme-corp.io")
        # The account's currency is USD (most clients): the USD balance is 100 + 50 (archived counts; the deleted
        # 999 does not); EUR and CAD balances are never added into it.
        assert (float(acme["fbOutstandingBalance"]), int(acme["fbInvoiceCount"])) == (150.0, 2)
        assert float(_company(w, "fbmkto:eurofirm.de")["fbOutstandingBalance"]) == 0.0
        assert float(_company(w, "fbmkto:mapleco.ca")["fbOutstandingBalance"]) == 0.0

        # Later: an already written invoice and a whole client are deleted in FreshBooks; a new EUR invoice.
        fb.delete("invoice", a["id"])
        fb.delete("client", cad["id"])
        f = fb.add_invoice(customerid=eur["id"], create_date=day(4).isoformat(), amount="25.00")
        expect.activities.add(sent("eur@eurofirm.de", f))
        w.ok(day(3))
        counts = expect.check(w)  # the deleted invoice's activity and the deleted client's lead stay in Marketo
        acme = _company(w, "fbmkto:acme-corp.io")
        assert (float(acme["fbOutstandingBalance"]), int(acme["fbInvoiceCount"])) == (50.0, 1)
        assert _company(w, "fbmkto:mapleco.ca")["fbInvoiceCount"] in (1, "1")  # no live client: left as it was
        figures.row(
            "deleted_archived",
            order=160,
            row="Deleted and archived FreshBooks records",
            faults={"deleted invoices": 2, "deleted payments": 1, "deleted clients": 2, "archived records": 2},
            runs=2,
            counts=counts,
            outcome="deleted: nothing written, nothing deleted in Marketo, summaries recomputed without them; "
            "archived: synced as live",
        )
        figures.row(
            "currencies",
            order=170,
            row="Several currencies (USD, EUR, CAD)",
            faults={"currencies": 3},
            runs=2,
            counts=counts,
            outcome="each activity carries its own amount and currency; company balances only in the account "
            "currency, never summed across currencies (shares its runs with the deleted/archived row)",
        )
