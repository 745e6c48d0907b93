"""Data at the edges through real DAG runs: DST changes, month and year ends, deleted and archived FreshBooks
records, several currencies. Expected activity moments are written out by hand (UTC), not computed. The DST
edges are those of the latest year that is over (:func:`edge_year`), so the records never age out of Marketo's
25-month retention (fixed 2025 dates would have stopped being sent from February 2027)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
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
    start_date: "{start}"
    retries: 0
"""


def us_dst_days(year: int) -> tuple[date, date]:
    """The US rule since 2007, written out: DST starts on March's second Sunday and ends on November's first."""
    march, november = date(year, 3, 1), date(year, 11, 1)
    first_march_sunday = march + timedelta(days=(6 - march.weekday()) % 7)
    return first_march_sunday + timedelta(days=7), november + timedelta(days=(6 - november.weekday()) % 7)


def edge_year(today: date) -> int:
    """The latest year whose whole span (12-30 of the year before .. the day after fall back) is over by
    ``today``: its records stay inside Marketo's 25-month retention, whatever the day the suite runs."""
    return today.year if today >= us_dst_days(today.year)[1] + timedelta(days=2) else today.year - 1


def z(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_dst_month_and_year_ends_land_each_record_once_at_its_eastern_midnight(
    airflow_home, tmp_path, figures: Figures
):
    year = edge_year(day(0))
    spring, fall = us_dst_days(year)  # 2025: 03-09 and 11-02
    feb_end = date(year, 3, 1) - timedelta(days=1)
    # Eastern midnights written out: 05:00Z while EST (up to and including the spring-forward day's, which is
    # before 2 am), 04:00Z while EDT (the day after it up to and including the fall-back day's).
    est = lambda d: z(f"{d.isoformat()}T05:00:00")  # noqa: E731
    edt = lambda d: z(f"{d.isoformat()}T04:00:00")  # noqa: E731
    one = timedelta(days=1)
    # Two manual windows bounded by Eastern midnights (offsets written out by hand): from the last day of the
    # year before up to the 23-hour spring-forward day, and from that day to the day after the 25-hour fall-back day.
    windows = [
        (f"{year - 1}-12-31T00:00:00-05:00", f"{spring.isoformat()}T00:00:00-05:00"),
        (f"{spring.isoformat()}T00:00:00-05:00", f"{(fall + one).isoformat()}T00:00:00-05:00"),
    ]
    config = EASTERN.format(start=f"{year - 1}-12-01")
    with open_world(airflow_home, tmp_path, config) as w:
        email = "dst@hooli.io"
        c = w.fb.add_client(fname="Dee", lname="Est", email=email)

        def inv(create: date, due_days: int) -> dict[str, Any]:
            return w.fb.add_invoice(
                customerid=c["id"], create_date=create.isoformat(), due_offset_days=due_days, amount="10.00"
            )

        i1 = inv(date(year - 1, 12, 30), 1)  # before the first window: no Invoice Sent; due 12-31 -> overdue 01-01
        i2 = inv(date(year - 1, 12, 31), 0)  # year end; due on receipt -> overdue 01-01
        i3 = inv(date(year, 1, 31), 1)  # month end; due 02-01 -> overdue 02-02
        i4 = inv(feb_end, (spring - one - feb_end).days)  # month end; due the day before spring forward -> overdue
        #                                                   at the start of the spring-forward day
        i5 = inv(date(year, 3, 1), (spring - date(year, 3, 1)).days)  # due on it -> overdue at the next day's (EDT)
        i6 = inv(spring, 30)  # the 23-hour day; paid the same day
        p1 = w.fb.add_payment(invoiceid=i6["id"], amount="10.00", date=spring.isoformat())
        i7 = inv(spring + one, 30)  # paid on the fall-back day: not overdue at its window's end
        p2 = w.fb.add_payment(invoiceid=i7["id"], amount="10.00", date=fall.isoformat())
        i8 = inv(fall - one, 0)  # due the day before fall back -> overdue at the start of the 25-hour day (EDT)
        i9 = inv(fall, 0)  # the 25-hour day; overdue at the next day's 00:00 EST = the last window's end: none
        inv(fall + one, 30)  # the last window's end date: outside every window
        n = lambda i: str(i["invoice_number"])  # noqa: E731
        expect = Tally(
            {
                Act(email, SENT, n(i2), est(date(year - 1, 12, 31))),
                Act(email, SENT, n(i3), est(date(year, 1, 31))),
                Act(email, SENT, n(i4), est(feb_end)),
                Act(email, SENT, n(i5), est(date(year, 3, 1))),
                Act(email, SENT, n(i6), est(spring)),  # midnight EST: DST starts at 2 am
                Act(email, SENT, n(i7), edt(spring + one)),  # midnight EDT
                Act(email, SENT, n(i8), edt(fall - one)),
                Act(email, SENT, n(i9), edt(fall)),  # midnight EDT: DST ends at 2 am
                Act(email, PAID, str(p1["id"]), est(spring)),
                Act(email, PAID, str(p2["id"]), edt(fall)),
                Act(email, OVERDUE, n(i1), est(date(year, 1, 1))),
                Act(email, OVERDUE, n(i2), est(date(year, 1, 1))),
                Act(email, OVERDUE, n(i3), est(date(year, 2, 2))),
                Act(email, OVERDUE, n(i4), est(spring)),
                Act(email, OVERDUE, n(i5), edt(spring + one)),
                Act(email, OVERDUE, n(i8), edt(fall)),
            },
            {email},
            {"fbmkto:hooli.io"},
        )
        per_window = []
        for start, end in windows:
            before = len(w.mkto.activities())
            w.ok(day(0), conf={"window_start": start, "window_end": end})
            per_window.append(len(w.mkto.activities()) - before)
        # by hand: 12-31..spring-1 -> sent i2 i3 i4 i5, overdue i1 i2 i3;
        # spring..fall -> sent i6 i7 i8 i9, paid p1 p2, overdue i4 i5 i8
        assert per_window == [7, 9]
        counts = expect.check(w)
        edges = f"{year - 1}-12-31, {spring} (spring forward), {fall + one} (after fall back)"
        figures.row(
            "dst_month_year",
            order=150,
            row="Timestamps at DST changes (23 h and 25 h days) and month/year ends (America/New_York)",
            faults={f"window edges: {edges}": 3},
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
