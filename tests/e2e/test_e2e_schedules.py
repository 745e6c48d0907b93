"""Real DAG runs on schedules whose windows do not end at midnight: nothing recorded after its window is lost.

``30 6 * * 1-5`` in Europe/Berlin and ``@hourly`` in New York: the window that holds a day's midnight ends
early that day (06:30, 01:00), so records typed in later that day arrive after their date's window ran. By
the scope rule (``sync/scope.py``) the next run sends them, at their own date, once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from airflow_provider_fbmkto.sync.window import start_of_day
from tests.e2e.conftest import BASE_CONFIG, TODAY, World, day, make_world

pytestmark = pytest.mark.e2e

SENT, PAYMENT = "fbInvoiceSent", "fbPaymentReceived"


@contextmanager
def _schedule_world(airflow_home: Path, tmp_path: Path, schedule: str, tz: str) -> Iterator[World]:
    config = BASE_CONFIG.replace('schedule: "@daily"', f'schedule: "{schedule}"').replace(
        "timezone: UTC", f"timezone: {tz}"
    )
    for w in make_world(airflow_home, tmp_path, config):
        assert w.cli("setup-marketo", "--conn-id", "marketo_default") == 0
        assert w.cli("authorize", "--conn-id", "freshbooks_acme", "--code", w.fb.issue_code()) == 0
        yield w


def _facts(w: World) -> list[tuple[str, str, datetime]]:
    """Every activity in Marketo as (type, primary value, UTC instant), sorted."""
    names = w.type_names()
    return sorted(
        (
            names[a["activityTypeId"]],
            str(a.get("primaryAttributeValue")),
            datetime.fromisoformat(str(a["activityDate"]).replace("Z", "+00:00")).astimezone(timezone.utc),
        )
        for a in w.mkto.activities()
    )


def test_weekday_mornings_in_berlin_lose_nothing_recorded_after_its_window(airflow_home, tmp_path):
    """``30 6 * * 1-5``: the window holding a day's midnight ends at 06:30 that day, so whatever is typed in
    later that day is recorded after its window -- and is sent by the next run, at its own date, once."""
    berlin = ZoneInfo("Europe/Berlin")
    mon = TODAY - timedelta(days=14 + TODAY.weekday())
    days = {name: mon + timedelta(days=i) for i, name in enumerate(["mon", "tue", "wed", "thu", "fri", "sat", "sun"])}
    days |= {"mon2": mon + timedelta(days=7), "tue2": mon + timedelta(days=8)}

    def tick(name: str) -> datetime:  # a run's logical moment: the end of its window
        return datetime.combine(days[name], time(6, 30), tzinfo=berlin).astimezone(timezone.utc)

    with _schedule_world(airflow_home, tmp_path, "30 6 * * 1-5", "Europe/Berlin") as w:
        fb = w.fb
        ann = fb.add_client(fname="Ann", lname="Lee", email="ann@bigco.io")
        expected: list[tuple[str, str, datetime]] = []

        def invoice(on: str, *, sent: bool = True) -> dict[str, Any]:
            inv = fb.add_invoice(customerid=ann["id"], create_date=str(days[on]), due_offset_days=60, amount="10.00")
            if sent:
                expected.append((SENT, inv["invoice_number"], start_of_day(days[on], berlin)))
            return inv

        def pay(inv: dict[str, Any], on: str) -> None:
            p = fb.add_payment(invoiceid=inv["id"], amount="4.00", date=str(days[on]))
            expected.append((PAYMENT, str(p["id"]), start_of_day(days[on], berlin)))

        i1 = invoice("tue")
        w.ok(tick("tue"))  # [Mon 06:30, Tue 06:30)
        pay(i1, "tue")  # Tuesday's cheque, typed in at 10:00
        i2 = invoice("wed")
        w.ok(tick("wed"))
        i3 = invoice("wed")  # Wednesday's invoice, typed in after 06:30
        w.ok(tick("thu"))
        pay(i2, "thu")
        w.ok(tick("fri"))
        invoice("fri")
        invoice("sun")
        pay(i3, "mon2")
        waiting = invoice("tue2", sent=False)  # after the frontier: its window has not run
        w.ok(tick("mon2"))  # [Fri 06:30, Mon 06:30): Saturday, Sunday and Monday

        assert _facts(w) == sorted(expected)
        assert waiting["invoice_number"] not in {p for _, p, _ in _facts(w)}


def test_hourly_windows_over_two_days_send_every_fact_once(airflow_home, tmp_path):
    """``@hourly`` in New York: only the run of the hour after midnight holds a date; everything recorded later
    that day is sent by the first hourly run after it (runs here at a few hours of two days, with gaps)."""
    ny = ZoneInfo("America/New_York")
    d1, d2 = day(6), day(5)

    def hour(d: date, h: int) -> datetime:  # the end of the hourly window [h - 1, h) of day d
        return start_of_day(d, ny) + timedelta(hours=h)

    with _schedule_world(airflow_home, tmp_path, "@hourly", "America/New_York") as w:
        fb = w.fb
        bo = fb.add_client(fname="Bo", lname="Day", email="bo@bo.io")

        def invoice(d: date) -> dict[str, Any]:
            return fb.add_invoice(customerid=bo["id"], create_date=str(d), due_offset_days=60, amount="20.00")

        j1 = invoice(d1)
        w.ok(hour(d1, 1))  # holds d1's midnight
        q1 = fb.add_payment(invoiceid=j1["id"], amount="5.00", date=str(d1))
        w.ok(hour(d1, 16))  # after a gap
        j2, j3 = invoice(d2), invoice(d1)
        w.ok(hour(d2, 1))
        q2 = fb.add_payment(invoiceid=j2["id"], amount="5.00", date=str(d2))
        j4 = invoice(d2 + timedelta(days=1))  # waits for its window
        w.ok(hour(d2, 13))

        assert _facts(w) == sorted(
            [
                (SENT, j1["invoice_number"], start_of_day(d1, ny)),
                (SENT, j3["invoice_number"], start_of_day(d1, ny)),
                (PAYMENT, str(q1["id"]), start_of_day(d1, ny)),
                (SENT, j2["invoice_number"], start_of_day(d2, ny)),
                (PAYMENT, str(q2["id"]), start_of_day(d2, ny)),
            ]
        )
        assert j4["invoice_number"] not in {p for _, p, _ in _facts(w)}
