"""The Marketo daily call budget, shared by every process and account writing into one Marketo instance.

Marketo's day resets at midnight America/Chicago (US Central, DST-aware). Each spend is one atomic conditional
update, so N workers spending concurrently never overshoot the limit.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import case, select, update

from airflow_provider_fbmkto.exceptions import QuotaExhausted
from airflow_provider_fbmkto.state._util import as_utc, utcnow
from airflow_provider_fbmkto.state.models import CallBudgetDay

if TYPE_CHECKING:
    from airflow_provider_fbmkto.state.db import StateDB

MARKETO_TZ = ZoneInfo("America/Chicago")


def marketo_day(now: datetime | None = None) -> date:
    """The Marketo quota day (America/Chicago calendar date) containing ``now``."""
    current = as_utc(now, "now") if now is not None else utcnow()
    return current.astimezone(MARKETO_TZ).date()


def next_reset(now: datetime | None = None) -> datetime:
    """When the quota day containing ``now`` ends: the next midnight America/Chicago, as aware UTC."""
    day = marketo_day(now)
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=MARKETO_TZ).astimezone(timezone.utc)


class BudgetExhausted(QuotaExhausted):
    """Our own daily budget for a Marketo instance is spent; nothing more is sent until it resets.

    :param used: calls already spent today.
    :param limit: the configured daily limit.
    :param resets_at: aware UTC time of the next Marketo midnight.
    """

    def __init__(self, message: str, *, instance: str, used: int, limit: int, resets_at: datetime) -> None:
        super().__init__(message, code="daily_budget", retryable=False)
        self.instance = instance
        self.used = used
        self.limit = limit
        self.resets_at = resets_at


class CallBudget:
    """Counts Marketo API calls per instance and Marketo day."""

    def __init__(self, db: StateDB) -> None:
        self._db = db

    def spend(self, instance: str, calls: int = 1, *, limit: int | None = None, now: datetime | None = None) -> int:
        """Atomically add ``calls`` to today's counter of ``instance``.

        :param instance: Marketo instance identity (e.g. the munchkin id or REST host).
        :param calls: calls about to be made (>= 0).
        :param limit: daily limit; when ``used + calls`` would exceed it nothing is added.
        :param now: the current time (aware); defaults to the clock.
        :return: calls used today after the spend.
        :raises BudgetExhausted: (a :class:`QuotaExhausted`) the spend would exceed ``limit``.
        """
        if calls < 0:
            raise ValueError("calls must be >= 0; use refund() to give calls back")
        day = marketo_day(now)
        stamp = utcnow()
        ensure_row = (
            self._db.insert(CallBudgetDay)
            .values(instance=instance, day=day, used=0, updated_at=stamp)
            .on_conflict_do_nothing(index_elements=[CallBudgetDay.instance, CallBudgetDay.day])
        )
        where = [CallBudgetDay.instance == instance, CallBudgetDay.day == day]
        if limit is not None:
            where.append(CallBudgetDay.used + calls <= limit)
        bump = (
            update(CallBudgetDay)
            .where(*where)
            .values(used=CallBudgetDay.used + calls, updated_at=stamp)
            .returning(CallBudgetDay.used)
        )
        with self._db.write_tx() as conn:
            conn.execute(ensure_row)
            used = conn.execute(bump).scalar_one_or_none()
            if used is None:
                current = conn.execute(
                    select(CallBudgetDay.used).where(CallBudgetDay.instance == instance, CallBudgetDay.day == day)
                ).scalar_one()
        if used is not None:
            return int(used)
        assert limit is not None
        resets = next_reset(now)
        local = resets.astimezone(MARKETO_TZ)
        raise BudgetExhausted(
            f"Marketo daily call budget of {instance} is spent: {current} of {limit} calls used on {day.isoformat()} "
            f"(America/Chicago) and {calls} more would exceed it; it resets at midnight America/Chicago "
            f"({local.isoformat()} = {resets.isoformat()}). Raise the daily budget in the Marketo connection's "
            "extras or wait for the reset",
            instance=instance,
            used=int(current),
            limit=limit,
            resets_at=resets,
        )

    def used(self, instance: str, *, now: datetime | None = None) -> int:
        """Calls spent on ``instance`` during the Marketo day containing ``now``."""
        day = marketo_day(now)
        with self._db.read_tx() as conn:
            value = conn.execute(
                select(CallBudgetDay.used).where(CallBudgetDay.instance == instance, CallBudgetDay.day == day)
            ).scalar_one_or_none()
        return int(value or 0)

    def refund(self, instance: str, calls: int = 1, *, now: datetime | None = None) -> None:
        """Give back ``calls`` Marketo did not count (errors 601/602/604/605/608/611); never goes below zero."""
        if calls <= 0:
            return
        day = marketo_day(now)
        with self._db.write_tx() as conn:
            conn.execute(
                update(CallBudgetDay)
                .where(CallBudgetDay.instance == instance, CallBudgetDay.day == day)
                .values(
                    used=case((CallBudgetDay.used >= calls, CallBudgetDay.used - calls), else_=0),
                    updated_at=utcnow(),
                )
            )
