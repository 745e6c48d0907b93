"""FreshBooks' time conventions: accounting timestamps are naive US/Eastern wall time, dates are plain dates."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

EASTERN = ZoneInfo("America/New_York")
UTC = timezone.utc
EASTERN_FORMAT = "%Y-%m-%d %H:%M:%S"


def require_aware(value: datetime, what: str = "datetime") -> datetime:
    """Return ``value`` in UTC; a naive datetime is a programming error (the emulator never guesses a zone)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def eastern_str(moment: datetime) -> str:
    """Render an aware instant as FreshBooks does: naive ``YYYY-MM-DD HH:MM:SS`` in US/Eastern wall time.

    Both instants of a DST fold (e.g. 05:30 and 06:30 UTC on 2024-11-03) render as ``01:30:00``: FreshBooks'
    strings carry no offset, so that ambiguity is real and the client side must live with it.
    """
    return moment.astimezone(EASTERN).strftime(EASTERN_FORMAT)


def eastern_date(moment: datetime) -> date:
    """The US/Eastern calendar day of an aware instant (what FreshBooks' day-granular search compares)."""
    return moment.astimezone(EASTERN).date()


def parse_eastern(text: str) -> datetime:
    """Parse a naive US/Eastern wall-time string into an aware UTC instant.

    A wall time inside a spring-forward gap (``2024-03-10 02:30:00``) does not exist: ``ValueError``.
    A wall time inside a fall-back fold is read as its first occurrence (daylight time, ``fold=0``).
    """
    naive = datetime.strptime(text, EASTERN_FORMAT)
    local = naive.replace(tzinfo=EASTERN)
    back = local.astimezone(UTC).astimezone(EASTERN).replace(tzinfo=None)
    if back != naive:
        raise ValueError(f"{text!r} does not exist in US/Eastern (it falls in a daylight-saving gap)")
    return local.astimezone(UTC)


def eastern_wall_to_utc(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """UTC instant of a wall time on ``day`` in US/Eastern; callers pick hours outside 02:00-03:00 on DST days."""
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=EASTERN).astimezone(UTC)


def dst_transition(day: date) -> datetime | None:
    """The UTC instant US/Eastern changes offset on ``day``, or ``None`` if it does not change that day."""
    start = datetime(day.year, day.month, day.day, tzinfo=EASTERN)
    end = start + timedelta(days=1)
    before, after = start.utcoffset(), end.utcoffset()
    if before == after:
        return None
    # the switch happens at 02:00 local time in the offset in force before it
    assert before is not None
    return datetime(day.year, day.month, day.day, 2, tzinfo=UTC) - before


def end_of_eastern_day(day: date) -> datetime:
    """The last second of ``day`` in US/Eastern, as an aware UTC instant."""
    return eastern_wall_to_utc(day, 23, 59, 59)
