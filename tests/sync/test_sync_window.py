"""Window arithmetic, FreshBooks day searches and Eastern wall time — expected values computed by hand.

US/Eastern 2025: EST (UTC-5) until 2025-03-09 02:00, then EDT (UTC-4) until 2025-11-02 02:00, then EST.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_fbmkto.sync.window import (
    EASTERN,
    Window,
    eastern_to_utc,
    in_window,
    local_date,
    parse_fb_timestamp,
    search_days,
    start_of_day,
    window_dates,
)

UTC = timezone.utc
NY = ZoneInfo("America/New_York")


def z(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


# ---------------------------------------------------------------- Window


def test_window_normalises_to_utc_and_is_half_open() -> None:
    w = Window(datetime(2025, 3, 9, 0, 0, tzinfo=NY), datetime(2025, 3, 10, 0, 0, tzinfo=NY))
    assert w.start == z(2025, 3, 9, 5)
    assert w.start.tzinfo is UTC
    assert w.end == z(2025, 3, 10, 4)  # EDT from 2025-03-09: a 23-hour day
    assert w.contains(z(2025, 3, 9, 5))
    assert in_window(z(2025, 3, 10, 3, 59, 59, 999999), w)
    assert not w.contains(z(2025, 3, 10, 4))
    assert z(2025, 3, 9, 4, 59) not in w


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (datetime(2025, 1, 1), z(2025, 1, 2), "naive"),
        (z(2025, 1, 1), datetime(2025, 1, 2), "naive"),
        (z(2025, 1, 2), z(2025, 1, 1), "before it starts"),
    ],
    ids=["naive-start", "naive-end", "backwards"],
)
def test_window_rejects_bad_bounds(start: datetime, end: datetime, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Window(start, end)


def test_empty_window_contains_nothing() -> None:
    w = Window(z(2025, 1, 1), z(2025, 1, 1))
    assert w.is_empty
    assert not w.contains(z(2025, 1, 1))
    assert window_dates(w, NY) == (date(2025, 1, 1), date(2025, 1, 1))


@pytest.mark.parametrize(
    ("day", "utc_start"),
    [
        (date(2025, 1, 1), z(2025, 1, 1, 5)),
        (date(2025, 3, 9), z(2025, 3, 9, 5)),  # the change happens at 02:00, midnight is still EST
        (date(2025, 3, 10), z(2025, 3, 10, 4)),
        (date(2025, 11, 2), z(2025, 11, 2, 4)),  # midnight still EDT
        (date(2025, 11, 3), z(2025, 11, 3, 5)),
        (date(2024, 2, 29), z(2024, 2, 29, 5)),
    ],
)
def test_start_of_day_eastern(day: date, utc_start: datetime) -> None:
    assert start_of_day(day, NY) == utc_start


def test_start_of_day_where_midnight_does_not_exist() -> None:
    # America/Havana springs forward at 00:00 -> 01:00 (2025-03-09): the day starts at 01:00 CDT = 05:00Z.
    assert start_of_day(date(2025, 3, 9), ZoneInfo("America/Havana")) == z(2025, 3, 9, 5)


def test_contains_date_uses_the_account_zone() -> None:
    eastern_day = Window(z(2025, 3, 9, 5), z(2025, 3, 10, 4))  # 2025-03-09 in New York
    assert eastern_day.contains_date(date(2025, 3, 9), NY)
    assert not eastern_day.contains_date(date(2025, 3, 10), NY)
    assert not eastern_day.contains_date(date(2025, 3, 8), NY)
    utc_day = Window(z(2025, 3, 10), z(2025, 3, 11))
    # 2025-03-10 starts at 04:00Z: inside the UTC day; 2025-03-11 starts at 04:00Z on the 11th: outside.
    assert utc_day.contains_date(date(2025, 3, 10), NY)
    assert not utc_day.contains_date(date(2025, 3, 11), NY)
    assert utc_day.contains_date(date(2025, 3, 10), ZoneInfo("UTC"))
    # Tokyo's 2025-03-11 starts at 2025-03-10T15:00Z, inside the UTC day of the 10th.
    assert utc_day.contains_date(date(2025, 3, 11), ZoneInfo("Asia/Tokyo"))


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (Window(z(2025, 3, 9, 5), z(2025, 3, 10, 4)), (date(2025, 3, 9), date(2025, 3, 10))),
        (Window(z(2025, 11, 2, 4), z(2025, 11, 3, 5)), (date(2025, 11, 2), date(2025, 11, 3))),  # 25 h day
        (Window(z(2025, 3, 1, 5), z(2025, 4, 1, 4)), (date(2025, 3, 1), date(2025, 4, 1))),  # March
        (Window(z(2024, 12, 31, 5), z(2025, 1, 1, 5)), (date(2024, 12, 31), date(2025, 1, 1))),
        (Window(z(2025, 3, 9, 6), z(2025, 3, 10, 4)), (date(2025, 3, 10), date(2025, 3, 10))),  # starts late
        (Window(z(2025, 3, 9, 5), z(2025, 3, 10, 4, 0, 1)), (date(2025, 3, 9), date(2025, 3, 11))),
    ],
    ids=["dst-spring", "dst-fall", "month", "year-end", "no-date", "one-second-over"],
)
def test_window_dates(window: Window, expected: tuple[date, date]) -> None:
    assert window_dates(window, NY) == expected


# ---------------------------------------------------------------- search_days


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        # Eastern day 2025-03-09: exact cover [03-09, 03-10), widened a day each side.
        (Window(z(2025, 3, 9, 5), z(2025, 3, 10, 4)), (date(2025, 3, 8), date(2025, 3, 11))),
        # UTC day 2025-01-01 = Eastern 2024-12-31 19:00 .. 2025-01-01 18:59:59 -> [12-31, 01-02) widened.
        (Window(z(2025, 1, 1), z(2025, 1, 2)), (date(2024, 12, 30), date(2025, 1, 3))),
        # Eastern month of February 2024 (leap year).
        (Window(z(2024, 2, 1, 5), z(2024, 3, 1, 5)), (date(2024, 1, 31), date(2024, 3, 2))),
        # fall-back day, 25 hours
        (Window(z(2025, 11, 2, 4), z(2025, 11, 3, 5)), (date(2025, 11, 1), date(2025, 11, 4))),
    ],
    ids=["eastern-day", "utc-day-year-end", "leap-february", "fall-back"],
)
def test_search_days(window: Window, expected: tuple[date, date]) -> None:
    assert search_days(window) == expected


windows = st.builds(
    lambda start, seconds: Window(start, start + timedelta(seconds=seconds)),
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)),
    st.integers(min_value=1, max_value=40 * 86400),
)


@given(windows, st.integers(min_value=0, max_value=999_999), st.integers(min_value=-12 * 60, max_value=14 * 60))
def test_search_days_cover_every_instant_in_any_zone(window: Window, fraction: int, offset_minutes: int) -> None:
    moment = window.start + (window.end - window.start) * fraction // 1_000_000
    assert window.contains(moment)
    low, high = search_days(window)
    # the exact Eastern cover is strictly inside the widened one
    assert low + timedelta(days=1) <= local_date(moment, EASTERN) < high - timedelta(days=1)
    # ... and a server counting days in any real UTC offset still finds the record
    zone = timezone(timedelta(minutes=offset_minutes))
    assert low <= moment.astimezone(zone).date() < high


# ---------------------------------------------------------------- Eastern wall time


@pytest.mark.parametrize(
    ("naive", "utc"),
    [
        (datetime(2025, 1, 1, 0, 0), z(2025, 1, 1, 5)),
        (datetime(2025, 7, 1, 12, 0), z(2025, 7, 1, 16)),
        (datetime(2025, 3, 9, 1, 59, 59), z(2025, 3, 9, 6, 59, 59)),
        (datetime(2025, 3, 9, 2, 30), z(2025, 3, 9, 7, 30)),  # gap: read with EST, i.e. 03:30 EDT
        (datetime(2025, 3, 9, 3, 0), z(2025, 3, 9, 7, 0)),
        (datetime(2025, 11, 2, 0, 59), z(2025, 11, 2, 4, 59)),
        (datetime(2025, 11, 2, 1, 30), z(2025, 11, 2, 5, 30)),  # fold: first occurrence (EDT)
        (datetime(2025, 11, 2, 2, 0), z(2025, 11, 2, 7, 0)),
        (datetime(2024, 12, 31, 23, 59, 59), z(2025, 1, 1, 4, 59, 59)),  # year end in Eastern, not in UTC
    ],
    ids=["winter", "summer", "before-gap", "in-gap", "after-gap", "before-fold", "in-fold", "after-fold", "year-end"],
)
def test_eastern_to_utc(naive: datetime, utc: datetime) -> None:
    assert eastern_to_utc(naive) == utc


def test_eastern_to_utc_refuses_aware() -> None:
    with pytest.raises(ValueError, match="naive"):
        eastern_to_utc(z(2025, 1, 1))


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31)))
def test_eastern_round_trip_only_moves_times_in_the_gap(naive: datetime) -> None:
    back = eastern_to_utc(naive).astimezone(NY).replace(tzinfo=None)
    if back != naive:
        # only a nonexistent time moves, forward by the one-hour gap
        assert back - naive == timedelta(hours=1)
        assert naive.hour == 2
        assert naive.month in (3, 4)


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2025-03-09 01:59:59", z(2025, 3, 9, 6, 59, 59)),
        ("2025-11-02 01:30:00", z(2025, 11, 2, 5, 30)),
        ("2025-06-01T12:00:00", z(2025, 6, 1, 16)),
        ("2025-06-01 12:00:00.5", datetime(2025, 6, 1, 16, 0, 0, 500000, tzinfo=UTC)),
        ("2025-06-01T12:00:00Z", z(2025, 6, 1, 12)),
        ("2025-06-01 12:00:00+0200", z(2025, 6, 1, 10)),
        ("2025-06-01 12:00:00-04:00", z(2025, 6, 1, 16)),
    ],
)
def test_parse_fb_timestamp(text: str, utc: datetime) -> None:
    assert parse_fb_timestamp(text) == utc


@pytest.mark.parametrize("text", ["", "yesterday", "2025-02-30 00:00:00", "2025-06-01", "2025-06-01 25:00:00"])
def test_parse_fb_timestamp_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a FreshBooks timestamp"):
        parse_fb_timestamp(text)
