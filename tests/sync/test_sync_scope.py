"""The scope rule: which fact dates a run plans by date and by change, retention, list exits, withdrawn rows."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sync_factories import client, invoice, payment

from airflow_provider_fbmkto.state.ledger_types import decide
from airflow_provider_fbmkto.sync.activities import invoice_sent_activities, overdue_activities, payment_activities
from airflow_provider_fbmkto.sync.health import PaymentStatus, summarize
from airflow_provider_fbmkto.sync.mapping import lead_payload, list_change, list_exit
from airflow_provider_fbmkto.sync.plan import MappingContext, Segments
from airflow_provider_fbmkto.sync.records import InvoiceStatus
from airflow_provider_fbmkto.sync.scope import (
    Coverage,
    Scope,
    changed_coverage,
    date_spans,
    merge_spans,
    months_before,
    retention_start,
    split_retained,
)
from airflow_provider_fbmkto.sync.window import Window, start_of_day

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
CTX = MappingContext(account="acme", fb_account_id="ACME01", tz=UTC)
CLIENTS = {1: client(id=1, email="ann@bigco.io")}


def d(day: int, hour: int = 0) -> datetime:
    """An instant in March 2026 (UTC)."""
    return datetime(2026, 3, 1, hour, tzinfo=UTC) + timedelta(days=day - 1)


def w(start: int, end: int) -> Window:
    return Window(d(start), d(end))


# ---------------------------------------------------------------- scope and spans


def test_a_run_extends_the_scope_to_the_hull_of_both() -> None:
    scope = Scope.of(w(10, 11))
    assert scope.extended(w(11, 12)) == Scope(d(10), d(12))  # the next daily run moves the frontier
    assert scope.extended(w(3, 4)) == Scope(d(3), d(11))  # a backfill moves the horizon back
    assert scope.extended(w(20, 21)) == Scope(d(10), d(21))  # a run after a gap covers the gap
    assert scope.extended(w(10, 11)) == scope  # a rerun changes nothing
    with pytest.raises(ValueError, match="before its horizon"):
        Scope(d(2), d(1))


@pytest.mark.parametrize(
    ("before", "window", "spans"),
    [
        (None, w(10, 11), [w(10, 11)]),  # first run: its window
        (Scope(d(1), d(10)), w(10, 11), [w(10, 11)]),  # next daily run: its window
        (Scope(d(1), d(10)), w(5, 6), [w(5, 6)]),  # a backfill inside the scope: its window only
        (Scope(d(1), d(10)), w(14, 15), [w(10, 15)]),  # after a gap: the gap too
        (Scope(d(10), d(20)), w(3, 4), [w(3, 10)]),  # a backfill before the horizon: up to the horizon
    ],
    ids=["first", "next", "inside", "gap", "before-horizon"],
)
def test_date_spans_are_the_window_and_what_it_adds(before: Scope | None, window: Window, spans: list[Window]) -> None:
    after = before.extended(window) if before else Scope.of(window)
    assert list(date_spans(before, after, window)) == spans


def test_merge_spans_joins_touching_and_overlapping_and_drops_empty() -> None:
    assert merge_spans([w(5, 6), w(1, 2), w(2, 3), w(5, 5), w(4, 7)]) == (w(1, 3), w(4, 7))


def test_changed_coverage_is_the_scope_outside_the_date_spans_and_before_now() -> None:
    after = Scope(d(1), d(11))
    dates = changed_coverage(after, (w(10, 11),), end=d(11), now=d(11, 5))
    assert dates.contains(d(1))
    assert dates.contains(d(9, 23))
    assert not dates.contains(d(10, 12))  # the window's own facts: planned by date
    assert not dates.contains(d(11))  # after the frontier: waits for its window
    assert not dates.contains(datetime(2026, 2, 28, 23, tzinfo=UTC))  # before the horizon
    ahead = Coverage((w(1, 30),), end=d(30), until=d(5))
    assert ahead.contains(d(4))
    assert not ahead.contains(d(5))


# ---------------------------------------------------------------- late facts through the activity functions


def test_late_facts_are_planned_by_change_dated_at_their_own_date() -> None:
    """Run of [10, 11) after the scope [1, 10): a payment dated the 3rd recorded today, a draft of the 4th sent
    today, an invoice typed in today dated the 2nd and due the 5th (already overdue)."""
    after = Scope(d(1), d(11))
    dates = changed_coverage(after, (w(10, 11),), end=d(11), now=d(11, 6))
    late_pay = payment(id=7, invoiceid=1, on=date(2026, 3, 3))
    sent_late = invoice(id=2, create_date=date(2026, 3, 4), due_date=date(2026, 4, 3))
    back_dated = invoice(id=3, create_date=date(2026, 3, 2), due_date=date(2026, 3, 5))
    future = invoice(id=4, create_date=date(2026, 3, 12))  # after the frontier: waits
    draft = invoice(id=5, create_date=date(2026, 3, 4), status=InvoiceStatus.DRAFT)

    (paid,) = payment_activities([late_pay], CLIENTS, {}, dates, CTX).items
    assert (paid.key, paid.activity_date) == ("payment_received:acme:7", d(3))
    sent = invoice_sent_activities([sent_late, back_dated, future, draft], CLIENTS, dates, CTX).items
    assert [(a.key, a.activity_date) for a in sent] == [("invoice_sent:acme:2", d(4)), ("invoice_sent:acme:3", d(2))]
    (overdue,) = overdue_activities([sent_late, back_dated, future], CLIENTS, dates, CTX).items
    assert (overdue.key, overdue.activity_date) == ("invoice_overdue:acme:3:2026-03-05", d(6))


def test_overdue_in_a_short_window_is_judged_at_the_end_of_the_overdue_day() -> None:
    """An hourly window holding the overdue moment: a payment dated that same day means it was paid on time
    for the day -- as a daily window would judge it -- whatever the schedule."""
    inv = invoice(id=9, create_date=date(2026, 3, 1), due_date=date(2026, 3, 5), outstanding="0.00")
    paid_same_day = invoice(
        id=9, create_date=date(2026, 3, 1), due_date=date(2026, 3, 5), outstanding="0.00", date_paid=date(2026, 3, 6)
    )
    paid_next_day = invoice(
        id=9, create_date=date(2026, 3, 1), due_date=date(2026, 3, 5), outstanding="0.00", date_paid=date(2026, 3, 7)
    )
    hour = Window(d(6, 0), d(6, 1))
    assert overdue_activities([paid_same_day], CLIENTS, hour, CTX).items == ()
    assert overdue_activities([paid_same_day], CLIENTS, w(6, 7), CTX).items == ()
    assert len(overdue_activities([paid_next_day], CLIENTS, hour, CTX).items) == 1
    assert overdue_activities([inv], CLIENTS, hour, CTX).items == ()  # paid, no date: never overdue


# ---------------------------------------------------------------- retention


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2026, 3, 31), 25, date(2024, 2, 29)),  # clamped to a leap February
        (date(2026, 12, 2), 25, date(2024, 11, 2)),
        (date(2026, 1, 15), 1, date(2025, 12, 15)),
    ],
)
def test_months_before(day: date, months: int, expected: date) -> None:
    assert months_before(day, months) == expected


def test_activities_older_than_marketo_retention_are_split_off() -> None:
    now = datetime(2026, 12, 2, 6, tzinfo=UTC)
    start = retention_start(now, BERLIN)
    assert start == datetime(2024, 11, 1, 23, tzinfo=UTC)  # 2024-11-02 00:00 in Berlin
    everything = Window(datetime(2024, 1, 1, tzinfo=UTC), now)
    pays = [payment(id=1, on=date(2024, 11, 1)), payment(id=2, on=date(2024, 11, 2))]
    ctx = MappingContext("acme", "ACME01", BERLIN)
    kept, old = split_retained(payment_activities(pays, CLIENTS, {}, everything, ctx).items, start=start)
    assert [a.key for a in kept] == ["payment_received:acme:2"]
    assert [a.key for a in old] == ["payment_received:acme:1"]


# ---------------------------------------------------------------- lists and the ledger decision


def test_a_vacated_email_leaves_both_lists_the_same_state_as_a_lead_in_no_segment() -> None:
    segments = Segments(paid_list_id=1001, overdue_list_id=1002, on_overdue_campaign_id=7)
    exit_ = list_exit("Old@BigCo.io", segments, CTX)
    assert exit_ is not None
    assert (exit_.key, exit_.add_to, exit_.remove_from, exit_.campaigns) == (
        "list:acme:old@bigco.io",
        (),
        (1001, 1002),
        (),
    )
    current = summarize([invoice(id=1, create_date=date(2026, 3, 1), due_date=date(2026, 3, 31))], as_of=d(2), tz=UTC)
    assert current.status is PaymentStatus.CURRENT
    lead = lead_payload("old@bigco.io", client(id=1), current, None, CTX)
    assert list_change(lead, segments, CTX) == exit_  # same hash: a lead in no list gets no call
    assert list_exit("a@b.io", Segments(), CTX) is None


@pytest.mark.parametrize(
    ("found", "kind", "decision"),
    [
        (None, "activity", "new"),
        (("h", "written"), "activity", "unchanged"),
        (("old", "written"), "activity", "kept"),
        (("old", "in_flight"), "lead", "held"),
        (("old", "written"), "lead", "changed"),
        (("h", "withdrawn"), "activity", "changed"),  # the fact came back (undeleted, sent again)
    ],
)
def test_ledger_decision(found: tuple[str, str] | None, kind: str, decision: str) -> None:
    assert decide(found, kind, "h") == decision


# ---------------------------------------------------------------- the rule as a property


@settings(max_examples=150, deadline=None)
@given(
    order=st.lists(st.integers(0, 20), min_size=1, max_size=8),
    facts=st.lists(st.tuples(st.integers(0, 24), st.integers(0, 7)), max_size=25),
)
def test_every_fact_in_the_final_scope_is_planned_by_some_run_in_any_run_order(
    order: list[int], facts: list[tuple[int, int]]
) -> None:
    """Daily windows run in any order (backfills, gaps, reruns); each payment is pulled by the run ``arrival``
    (recorded late) and stays in the mirror. Planned by date over the spans each run adds, and by change over
    what it pulled: the union is exactly the payments dated inside the final scope -- none lost, none outside."""
    pays = [payment(id=i + 1, on=date(2026, 3, 1) + timedelta(days=day_)) for i, (day_, _) in enumerate(facts)]
    arrival = {p.id: a for p, (_, a) in zip(pays, facts, strict=True)}
    scope: Scope | None = None
    planned: set[str] = set()
    now = d(60)
    for run, start in enumerate(order):
        window = w(start + 1, start + 2)
        before, scope = scope, scope.extended(window) if scope else Scope.of(window)
        spans = date_spans(before, scope, window)
        mirror = [p for p in pays if arrival[p.id] <= run]
        for span in spans:
            dates = Coverage((span,), end=window.end, until=now)
            planned |= {a.key for a in payment_activities(mirror, CLIENTS, {}, dates, CTX).items}
        if before is not None:
            pulled = [p for p in mirror if arrival[p.id] == run]
            dates = changed_coverage(scope, spans, end=window.end, now=now)
            planned |= {a.key for a in payment_activities(pulled, CLIENTS, {}, dates, CTX).items}
    assert scope is not None
    seen = [p for p in pays if arrival[p.id] < len(order)]
    assert planned == {f"payment_received:acme:{p.id}" for p in seen if scope.contains(start_of_day(p.date, UTC))}
