"""Time windows and the time-zone arithmetic every sync step shares.

A :class:`Window` is Airflow's data interval ``[start, end)``, held as aware UTC datetimes. Three clocks meet
here, and each function says which one it speaks:

* **UTC instants** — window bounds, ``updated`` timestamps after parsing, activity moments.
* **the account time zone** (``America/New_York`` unless configured) — gives FreshBooks' plain dates
  (``create_date``, ``due_date``, payment ``date``) a moment: a date *is* the instant its day starts there.
* **US/Eastern wall time** — how FreshBooks writes ``updated`` / ``created_at`` (naive strings), and the zone
  its ``search[updated_min|max]`` days are counted in, whatever the account's own time zone.

Local wall times that do not map to exactly one instant follow PEP 495 with ``fold=0``:

* a time in the spring-forward gap (``2025-03-09 02:30`` Eastern does not exist) is read with the offset in
  force *before* the change, so it lands one gap-length later on the new clock (``03:30 EDT`` = ``07:30Z``);
* a time in the fall-back fold (``2025-11-02 01:30`` Eastern happens twice) is the *first* occurrence
  (``01:30 EDT`` = ``05:30Z``, not ``06:30Z``).

For a start of day this gives the first instant of that day even in zones whose clocks jump at midnight.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

__all__ = [
    "EASTERN",
    "UTC",
    "Window",
    "eastern_to_utc",
    "in_window",
    "local_date",
    "local_instant",
    "parse_fb_timestamp",
    "search_days",
    "start_of_day",
    "to_utc",
    "window_dates",
]

UTC = timezone.utc
EASTERN = ZoneInfo("America/New_York")
"""FreshBooks' server clock (the same rules as the legacy name ``US/Eastern``)."""

_ONE_DAY = timedelta(days=1)
_TICK = timedelta(microseconds=1)


def to_utc(moment: datetime) -> datetime:
    """Return ``moment`` as a plain :class:`datetime` in UTC (also converts pendulum's subclass).

    :param moment: an aware datetime.
    :raises ValueError: when ``moment`` is naive — a naive value has no agreed meaning here.
    """
    if moment.tzinfo is UTC and type(moment) is datetime:  # already one (planning asks millions of times)
        return moment
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()!r}: give a time zone (UTC instants are expected)")
    u = moment.astimezone(UTC)
    return datetime(u.year, u.month, u.day, u.hour, u.minute, u.second, u.microsecond, tzinfo=UTC)


def start_of_day(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant at which ``day`` starts in ``tz`` (see the module notes for clocks jumping at midnight).

    :param day: a calendar date.
    :param tz: the zone whose midnight is meant.
    """
    return _start_of_day(day, tz)


@functools.lru_cache(maxsize=8192)
def _start_of_day(day: date, tz: ZoneInfo) -> datetime:
    # Planning asks for the same few hundred days a million times; datetimes are immutable.
    return to_utc(datetime.combine(day, time(0), tzinfo=tz))


def local_date(moment: datetime, tz: ZoneInfo) -> date:
    """The calendar date that an aware ``moment`` falls on in ``tz``."""
    return to_utc(moment).astimezone(tz).date()


def local_instant(text: str, tz: ZoneInfo) -> datetime:
    """An ISO 8601 date or date-time as a UTC instant; a date alone is the start of that day in ``tz``.

    ``2025-03-01`` in America/New_York is ``2025-03-01T05:00Z``; a date-time with an offset (or ``Z``) is taken
    as given, and one without an offset is UTC. Manual-run Params ``window_start`` / ``window_end`` are read
    this way, so a date means the account's day, as in the windows of its scheduled runs.

    :raises ValueError: when ``text`` is not ISO 8601.
    """
    raw = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        return start_of_day(date.fromisoformat(raw), tz)
    moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return to_utc(moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC))


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open interval ``[start, end)`` of UTC instants (Airflow's data interval).

    Both bounds must be aware; they are normalised to plain UTC datetimes. ``start == end`` is allowed
    (an empty window: Airflow's zero-length intervals) and contains nothing.

    :param start: first instant in the window.
    :param end: first instant after the window.
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        start, end = to_utc(self.start), to_utc(self.end)
        if end < start:
            raise ValueError(f"window ends ({end.isoformat()}) before it starts ({start.isoformat()})")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    def __contains__(self, moment: object) -> bool:
        return isinstance(moment, datetime) and self.contains(moment)

    def contains(self, moment: datetime) -> bool:
        """Whether an aware instant lies in ``[start, end)``."""
        return self.start <= to_utc(moment) < self.end

    def contains_date(self, day: date, tz: ZoneInfo) -> bool:
        """Whether ``day`` belongs to the window: its start of day in ``tz`` lies in ``[start, end)``."""
        return self.contains(start_of_day(day, tz))

    @property
    def is_empty(self) -> bool:
        return self.start == self.end

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


def in_window(moment: datetime, window: Window) -> bool:
    """Whether an aware instant lies in ``window`` (``[start, end)``); same as ``window.contains``."""
    return window.contains(moment)


def window_dates(window: Window, tz: ZoneInfo) -> tuple[date, date]:
    """The dates that belong to ``window`` in ``tz``, as a half-open range ``(first, stop)``.

    ``d`` belongs to the window exactly when ``first <= d < stop`` (``first == stop`` when no date does).
    Use it for FreshBooks' invoice-date search, then keep filtering with :meth:`Window.contains_date`.
    """
    first = local_date(window.start, tz)
    if start_of_day(first, tz) < window.start:
        first += _ONE_DAY
    if window.is_empty:
        return first, first
    stop = local_date(window.end - _TICK, tz) + _ONE_DAY
    return first, max(first, stop)


def search_days(window: Window) -> tuple[date, date]:
    """FreshBooks ``search[updated_min]`` / ``search[updated_max]`` days covering ``window`` with a margin.

    FreshBooks compares ``updated`` (US/Eastern wall time) at day granularity and ``updated_max`` is
    exclusive. The exact cover is ``[eastern date of start, eastern date of the last instant + 1)``. We widen
    that by one day on each side::

        updated_min = eastern_date(start) - 1 day
        updated_max = eastern_date(end - 1 µs) + 2 days      (exclusive)

    so the search still covers the window if FreshBooks counts days in any zone less than 24 hours from
    Eastern (UTC included), or applies the bound inclusively/exclusively other than documented. When ``end``
    is an Eastern midnight the upper bound is simply ``eastern_date(end) + 1``. The surplus records are
    dropped by filtering exactly on ``updated`` (:func:`in_window`) on our side. An empty window still
    returns a (two-day) range; callers may skip the call.

    :returns: ``(updated_min, updated_max)`` for the query string (``date.isoformat()``).
    """
    first = local_date(window.start, EASTERN)
    last = local_date(window.end - _TICK, EASTERN) if not window.is_empty else first
    last = max(first, last)
    return first - _ONE_DAY, last + 2 * _ONE_DAY


def eastern_to_utc(naive: datetime) -> datetime:
    """Convert a naive US/Eastern wall time (as FreshBooks writes it) to an aware UTC instant.

    Nonexistent times (spring gap) move forward by the gap; ambiguous times (fall fold) take the first
    occurrence (``fold=0``). See the module notes.

    :raises ValueError: when ``naive`` already carries a time zone.
    """
    if naive.tzinfo is not None:
        raise ValueError(f"expected a naive US/Eastern wall time, got {naive.isoformat()!r}")
    return to_utc(naive.replace(tzinfo=EASTERN, fold=0))


_FB_TS = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[ T](?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)"
    r"(?P<zone>Z|[+-]\d{2}:?\d{2})?$"
)


def parse_fb_timestamp(text: str) -> datetime:
    """Parse a FreshBooks timestamp into an aware UTC datetime.

    ``"2025-03-09 01:59:59"`` (the accounting API: naive US/Eastern wall time) is read with
    :func:`eastern_to_utc`; a value that carries its own offset (``"…Z"``, ``"…+00:00"``, as some newer
    FreshBooks APIs send) is honoured as given. A ``T`` separator and fractional seconds are accepted.

    :raises ValueError: for anything else, quoting the text.
    """
    m = _FB_TS.match(text.strip())
    if m is None:
        raise ValueError(f"not a FreshBooks timestamp: {text!r} (expected 'YYYY-MM-DD HH:MM:SS')")
    clock = m["time"]
    if "." in clock:  # Python 3.10's fromisoformat wants 3 or 6 fraction digits
        whole, fraction = clock.split(".")
        clock = f"{whole}.{fraction.ljust(6, '0')}"
    base = f"{m['date']}T{clock}"
    zone = m["zone"]
    try:
        if zone is None:
            return eastern_to_utc(datetime.fromisoformat(base))
        if zone == "Z":
            zone = "+00:00"
        elif ":" not in zone:
            zone = f"{zone[:3]}:{zone[3:]}"
        return to_utc(datetime.fromisoformat(base + zone))
    except ValueError as exc:
        raise ValueError(f"not a FreshBooks timestamp: {text!r} ({exc})") from None
