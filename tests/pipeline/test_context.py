"""Which window a run covers: Params, data interval, "since last success", account start."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from airflow_provider_fbmkto.exceptions import ConfigError
from airflow_provider_fbmkto.pipeline.context import resolve_window

UTC = timezone.utc
NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
ACCOUNT_START = datetime(2025, 1, 1, 5, 0, tzinfo=UTC)  # 2025-01-01 00:00 America/New_York
LAST_SUCCESS = datetime(2025, 6, 14, 4, 0, tzinfo=UTC)
I_START = datetime(2025, 6, 13, 4, 0, tzinfo=UTC)
I_END = datetime(2025, 6, 14, 4, 0, tzinfo=UTC)


def window(
    *,
    params: dict[str, Any] | None = None,
    interval: tuple[datetime | None, datetime | None] = (None, None),
    last: datetime | None = None,
) -> tuple[datetime, datetime]:
    w = resolve_window(
        interval_start=interval[0],
        interval_end=interval[1],
        params=params or {},
        last_success_end=last,
        account_start=ACCOUNT_START,
        now=NOW,
        tz=ZoneInfo("America/New_York"),
    )
    return w.start, w.end


def test_params_win_over_the_data_interval() -> None:
    got = window(
        params={"window_start": "2025-03-01", "window_end": "2025-04-01T00:00:00Z"},
        interval=(I_START, I_END),
        last=LAST_SUCCESS,
    )
    # A date is the account's midnight (America/New_York: 05:00Z in March); a date-time with Z is as given.
    assert got == (datetime(2025, 3, 1, 5, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC))


def test_only_window_start_runs_until_now() -> None:
    got = window(params={"window_start": "2025-05-01T00:00:00+02:00"}, interval=(I_START, I_END), last=LAST_SUCCESS)
    assert got == (datetime(2025, 4, 30, 22, 0, tzinfo=UTC), NOW)


def test_only_window_end_starts_at_last_success() -> None:
    got = window(params={"window_end": "2025-06-15T00:00:00Z"}, last=LAST_SUCCESS)
    assert got == (LAST_SUCCESS, datetime(2025, 6, 15, tzinfo=UTC))


def test_only_window_end_before_the_last_success_says_to_give_window_start() -> None:
    with pytest.raises(ConfigError) as err:
        window(params={"window_end": "2025-03-01"}, last=LAST_SUCCESS)
    message = str(err.value)
    assert "before the end of the last successful run (2025-06-14T04:00:00+00:00)" in message
    assert "give window_start too" in message
    with pytest.raises(ConfigError, match="before the account's start_date"):
        window(params={"window_end": "2024-12-01"})


def test_empty_params_are_ignored() -> None:
    got = window(params={"window_start": None, "window_end": ""}, interval=(I_START, I_END), last=LAST_SUCCESS)
    assert got == (I_START, I_END)


def test_data_interval_is_used_for_scheduled_runs_and_backfills() -> None:
    # A backfill of an old interval: neither last success nor now matter.
    got = window(interval=(I_START - timedelta(days=90), I_END - timedelta(days=90)), last=LAST_SUCCESS)
    assert got == (I_START - timedelta(days=90), I_END - timedelta(days=90))


def test_interval_in_another_zone_comes_back_in_utc() -> None:
    ny = ZoneInfo("America/New_York")
    start, end = window(interval=(datetime(2025, 6, 13, tzinfo=ny), datetime(2025, 6, 14, tzinfo=ny)))
    assert (start, end) == (I_START, I_END)
    assert start.utcoffset() == timedelta(0)


def test_manual_run_without_interval_covers_since_last_success_until_now() -> None:
    assert window(last=LAST_SUCCESS) == (LAST_SUCCESS, NOW)


def test_empty_interval_counts_as_no_interval() -> None:
    # Airflow 3 manual runs without a logical date may carry start == end.
    assert window(interval=(NOW, NOW), last=LAST_SUCCESS) == (LAST_SUCCESS, NOW)


def test_first_manual_run_starts_at_the_account_start() -> None:
    assert window() == (ACCOUNT_START, NOW)


def test_end_before_start_names_both_params() -> None:
    with pytest.raises(ConfigError) as err:
        window(params={"window_start": "2025-04-01", "window_end": "2025-03-01"})
    message = str(err.value)
    assert "window_start" in message
    assert "window_end" in message
    assert "2025-03-01" in message
    assert "2025-04-01" in message


@pytest.mark.parametrize("field", ["window_start", "window_end"])
@pytest.mark.parametrize("value", ["yesterday", "2025-13-01", "01/03/2025"])
def test_bad_iso_string_names_the_param_and_an_example(field: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        window(params={field: value})
    message = str(err.value)
    assert field in message
    assert value in message
    assert "2025-03-01" in message  # the example of a good value


@pytest.fixture
def local_time_is_not_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run with a non-UTC local zone, so treating naive values as *local* time would show."""
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is not available on this platform")
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_time_is_not_utc")
def test_naive_param_strings_are_taken_as_utc() -> None:
    got = window(params={"window_start": "2025-03-01T06:30:00", "window_end": "2025-03-02T00:00:00"})
    assert got == (datetime(2025, 3, 1, 6, 30, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC))


@pytest.mark.usefixtures("local_time_is_not_utc")
def test_naive_param_datetimes_are_taken_as_utc() -> None:
    got = window(params={"window_start": datetime(2025, 3, 1, 6, 30), "window_end": datetime(2025, 3, 2)})
    assert got == (datetime(2025, 3, 1, 6, 30, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC))
    assert all(moment.utcoffset() == timedelta(0) for moment in got)


def test_window_longer_than_ten_years_is_refused() -> None:
    with pytest.raises(ConfigError, match="ten years"):
        window(params={"window_start": "1990-01-01", "window_end": "2025-01-01"})
