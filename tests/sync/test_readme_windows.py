"""README "Runs, backfills, manual runs": a manual run's date Params are the account's midnights."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from airflow_provider_fbmkto.sync.window import Window, local_instant, window_dates

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
README = Path(__file__).resolve().parents[2] / "README.md"
SENTENCE = (
    "A manual run's `window_start` / `window_end` given as dates are the account's midnights: `2025-03-01` and "
    "`2025-03-08` cover 1 to 7 March in New York, `[2025-03-01T05:00Z, 2025-03-08T05:00Z)`; a date-time without "
    "an offset is UTC."
)


def test_the_readme_manual_run_sentence_holds() -> None:
    assert SENTENCE in README.read_text()
    window = Window(local_instant("2025-03-01", NY), local_instant("2025-03-08", NY))
    assert (window.start, window.end) == (datetime(2025, 3, 1, 5, tzinfo=UTC), datetime(2025, 3, 8, 5, tzinfo=UTC))
    first, stop = window_dates(window, NY)
    assert (first.isoformat(), stop.isoformat()) == ("2025-03-01", "2025-03-08")  # 1..7 March, the 8th excluded
    assert local_instant("2025-03-01T00:00:00", NY) == datetime(2025, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("2025-03-09", "America/New_York", datetime(2025, 3, 9, 5, tzinfo=UTC)),  # the spring-forward day: EST midnight
        ("2025-03-10", "America/New_York", datetime(2025, 3, 10, 4, tzinfo=UTC)),  # the day after: EDT
        ("2025-03-01", "Europe/Berlin", datetime(2025, 2, 28, 23, tzinfo=UTC)),  # east of UTC: the day before
        ("2025-03-01T00:00:00+02:00", "America/New_York", datetime(2025, 2, 28, 22, tzinfo=UTC)),  # offset as given
        ("2025-03-01T06:30:00Z", "America/New_York", datetime(2025, 3, 1, 6, 30, tzinfo=UTC)),
    ],
)
def test_local_instant(text: str, zone: str, expected: datetime) -> None:
    assert local_instant(text, ZoneInfo(zone)) == expected


def test_local_instant_refuses_what_is_not_iso() -> None:
    with pytest.raises(ValueError, match=r"Invalid isoformat|month must be"):
        local_instant("01/03/2025", NY)
    with pytest.raises(ValueError, match="month must be"):
        local_instant("2025-13-01", NY)
