"""Validation of an account's ``schedule``: an ``@``-preset or a five-field cron expression.

The DAG uses ``CronDataIntervalTimetable`` (a data interval per run; backfills need one), so schedules without
an interval — ``@once``, ``@continuous``, ``None`` — are refused. This checks syntax and ranges only; Airflow
parses the expression itself (croniter) when it builds the timetable.
"""

from __future__ import annotations

import re

__all__ = ["PRESETS", "schedule_problem"]

PRESETS: frozenset[str] = frozenset(
    {"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@quarterly", "@yearly", "@annually"}
)

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, start=1)}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}

# (name, low, high, names)
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)

_ITEM = re.compile(r"^(?P<base>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>\d+))?$")


def _value(token: str, low: int, high: int, names: dict[str, int]) -> int | None:
    if token.isdigit():
        n = int(token)
        return n if low <= n <= high else None
    return names.get(token)


def _item_problem(item: str, index: int) -> str | None:
    name, low, high, names = _FIELDS[index]
    if item == "?" and index in (2, 4):
        return None
    if index == 2 and item == "l":
        return None
    if index == 4:
        hashed = re.fullmatch(r"([a-z0-9]+)(#[1-5]|l)", item)
        if hashed:
            if _value(hashed[1], low, high, names) is None:
                return f"{name} {hashed[1]!r} is not in {low}-{high}"
            return None
    m = _ITEM.match(item)
    if m is None:
        return f"{name} part {item!r} is not a number, range, list or step"
    step = m["step"]
    if step is not None and int(step) < 1:
        return f"{name} step in {item!r} must be at least 1"
    base = m["base"]
    if base == "*":
        return None
    first, _, last = base.partition("-")
    a = _value(first, low, high, names)
    b = _value(last, low, high, names) if last else a
    if a is None or b is None:
        bad = first if a is None else last
        allowed = f"{low}-{high}" + {3: " or jan-dec", 4: " or sun-sat"}.get(index, "")
        return f"{name} {bad!r} is not in {allowed}"
    if b < a:
        return f"{name} range {base!r} runs backwards; write it low-high"
    return None


def schedule_problem(schedule: str) -> str | None:
    """Why ``schedule`` is not usable, or ``None`` when it is.

    Accepts the presets in :data:`PRESETS` and five-field cron (minute hour day-of-month month day-of-week)
    with numbers, ``*``, ranges ``a-b``, steps ``*/n`` / ``a-b/n`` / ``a/n``, comma lists, month and weekday
    names (``jan``, ``mon``), ``?``, ``L`` in day-of-month, and ``n#k`` / ``nL`` in day-of-week.
    """
    text = schedule.strip().lower()
    if text.startswith("@"):
        if text in PRESETS:
            return None
        if text in ("@once", "@continuous"):
            return f"{schedule!r} has no data interval; use a cron expression or one of {', '.join(sorted(PRESETS))}"
        return f"unknown preset {schedule!r}; use one of {', '.join(sorted(PRESETS))} or a cron expression"
    parts = text.split()
    if len(parts) != 5:
        return (
            f"cron {schedule!r} has {len(parts)} fields; write five: minute hour day-of-month month day-of-week "
            f"(e.g. '0 6 * * *' for 06:00 daily)"
        )
    for index, part in enumerate(parts):
        for item in part.split(","):
            problem = _item_problem(item, index)
            if problem is not None:
                return f"cron {schedule!r}: {problem}"
    return None
