"""The scope of an account and which fact dates one run plans (pinned semantics, see docs/architecture.md).

An account's **scope** is the span its runs have covered so far, ``[horizon, frontier)``: the horizon is the
earliest window start of any run (a backfill moves it back), the frontier the latest window end. The rule::

    A fact dated inside the scope is sent by the first run that sees it, dated at its own date, once.
    A fact dated after the frontier waits for the run whose window holds it.

A run therefore plans two sets of facts:

* by **date**, from the mirror: the facts dated in its window and in the part of the scope its window adds
  (:func:`date_spans`) -- a run after a gap also covers the gap;
* by **change**: the facts of the records it pulled (changed since the last pull) that fall anywhere in the
  scope and not in the date spans (:func:`changed_coverage`) -- a payment recorded days after its date, a
  draft sent days after its invoice date, an invoice typed in back-dated.

Facts dated at or after the run's ``now`` do not exist yet; facts older than Marketo's activity retention
(:data:`RETENTION_MONTHS`) are not sent (Marketo would purge them) but counted for the report.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from airflow_provider_fbmkto.sync.plan import PlannedActivity
from airflow_provider_fbmkto.sync.window import Window, local_date, start_of_day, to_utc

__all__ = [
    "RETENTION_MONTHS",
    "Coverage",
    "Scope",
    "changed_coverage",
    "date_spans",
    "merge_spans",
    "months_before",
    "retention_start",
    "split_retained",
]

#: Marketo purges activities this many months after their date.
RETENTION_MONTHS = 25


@dataclass(frozen=True, slots=True)
class Scope:
    """``[horizon, frontier)`` of UTC instants: what an account's runs have covered so far."""

    horizon: datetime
    frontier: datetime

    def __post_init__(self) -> None:
        horizon, frontier = to_utc(self.horizon), to_utc(self.frontier)
        if frontier < horizon:
            raise ValueError(f"scope frontier {frontier.isoformat()} is before its horizon {horizon.isoformat()}")
        object.__setattr__(self, "horizon", horizon)
        object.__setattr__(self, "frontier", frontier)

    @classmethod
    def of(cls, window: Window) -> Scope:
        return cls(window.start, window.end)

    def extended(self, window: Window) -> Scope:
        """The scope after a run of ``window``: the hull of both (gaps between them are covered too)."""
        return Scope(min(self.horizon, window.start), max(self.frontier, window.end))

    def contains(self, moment: datetime) -> bool:
        return self.horizon <= to_utc(moment) < self.frontier

    def as_window(self) -> Window:
        return Window(self.horizon, self.frontier)


def merge_spans(spans: Iterable[Window]) -> tuple[Window, ...]:
    """The union of half-open spans as sorted, disjoint spans (touching ones joined, empty ones dropped)."""
    merged: list[Window] = []
    for span in sorted((s for s in spans if not s.is_empty), key=lambda s: s.start):
        if merged and span.start <= merged[-1].end:
            merged[-1] = Window(merged[-1].start, max(merged[-1].end, span.end))
        else:
            merged.append(span)
    return tuple(merged)


def date_spans(before: Scope | None, after: Scope, window: Window) -> tuple[Window, ...]:
    """The spans a run plans by date: its window and what it added to the scope (``after`` minus ``before``).

    :param before: the scope before this run (``None``: the account's first run).
    :param after: the scope with this run's window.
    """
    parts = [window]
    if before is None:
        parts.append(after.as_window())
    else:
        parts.append(Window(after.horizon, max(after.horizon, before.horizon)))
        parts.append(Window(min(after.frontier, before.frontier), after.frontier))
    return merge_spans(parts)


@dataclass(frozen=True, slots=True)
class Coverage:
    """The fact moments one planning pass takes: in a ``span``, in no ``planned_elsewhere`` span, before ``until``.

    It answers like a :class:`~airflow_provider_fbmkto.sync.window.Window` (``contains``, ``contains_date``,
    ``end``), so the activity functions take either.

    :param spans: where facts are taken.
    :param end: the moment "still unpaid" is judged at for Invoice Overdue (the run's window end).
    :param until: facts at or after it do not exist yet (the run's now); ``None``: no limit.
    :param planned_elsewhere: spans another pass of the same run plans.
    """

    spans: tuple[Window, ...]
    end: datetime
    until: datetime | None = None
    planned_elsewhere: tuple[Window, ...] = ()

    def contains(self, moment: datetime) -> bool:
        # Asked for every fact a run plans (millions at 1M records): plain loops over the spans' UTC bounds.
        m = to_utc(moment)
        if self.until is not None and m >= to_utc(self.until):
            return False
        for span in self.spans:
            if span.start <= m < span.end:
                break
        else:
            return False
        return all(not (s.start <= m < s.end) for s in self.planned_elsewhere) if self.planned_elsewhere else True

    def contains_date(self, day: date, tz: ZoneInfo) -> bool:
        return self.contains(start_of_day(day, tz))


def changed_coverage(after: Scope, spans: tuple[Window, ...], *, end: datetime, now: datetime) -> Coverage:
    """What the by-change pass takes: anywhere in the scope ``after``, except the by-date ``spans``."""
    return Coverage((after.as_window(),), end=end, until=now, planned_elsewhere=spans)


def months_before(day: date, months: int) -> date:
    """``day`` moved back ``months`` calendar months (the day clamped to the month's length)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def retention_start(now: datetime, tz: ZoneInfo, months: int = RETENTION_MONTHS) -> datetime:
    """The first instant whose activities Marketo still keeps at ``now``: the start of the day ``months`` earlier."""
    return start_of_day(months_before(local_date(now, tz), months), tz)


def split_retained(
    items: Iterable[PlannedActivity], *, start: datetime
) -> tuple[list[PlannedActivity], list[PlannedActivity]]:
    """``(kept, too_old)``: activities dated at or after ``start`` (see :func:`retention_start`), and the others."""
    kept: list[PlannedActivity] = []
    old: list[PlannedActivity] = []
    for item in items:
        (kept if to_utc(item.activity_date) >= start else old).append(item)
    return kept, old
