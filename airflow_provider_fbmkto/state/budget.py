"""The Marketo daily call budget, shared by every process and account writing into one Marketo instance.

Marketo's day resets at midnight America/Chicago (US Central, DST-aware). Each spend is one atomic conditional
update, so N workers spending concurrently never overshoot the limit. A spend on behalf of an account is also
counted per account (``fbmkto_call_budget_accounts``) and may be capped by the account's share of the day
(``daily_budget_share``), in the same transaction.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Integer, String, case, select, update
from sqlalchemy.orm import Mapped, mapped_column

from airflow_provider_fbmkto.exceptions import QuotaExhausted
from airflow_provider_fbmkto.state._util import as_utc, utcnow
from airflow_provider_fbmkto.state.models import Base, CallBudgetDay, UTCDateTime

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


class AccountCallDay(Base):
    """Calls spent on one Marketo instance during one Marketo day on behalf of one account."""

    __tablename__ = "fbmkto_call_budget_accounts"

    instance: Mapped[str] = mapped_column(String(250), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    account: Mapped[str] = mapped_column(String(128), primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ShareExhausted(BudgetExhausted):
    """The account's share of the instance's daily budget (``daily_budget_share``) is spent; the other accounts
    of the instance may still send. Nothing more is sent for this account until the reset.

    :param account: the account whose share is spent.
    """

    def __init__(
        self, message: str, *, account: str, instance: str, used: int, limit: int, resets_at: datetime
    ) -> None:
        super().__init__(message, instance=instance, used=used, limit=limit, resets_at=resets_at)
        self.code = "daily_budget_share"
        self.account = account


class _ShareStop(Exception):
    """Internal: the account's share refused the spend (rolls the instance's count back)."""

    def __init__(self, used: int) -> None:
        self.used = used


class CallBudget:
    """Counts Marketo API calls per instance and Marketo day."""

    def __init__(self, db: StateDB) -> None:
        self._db = db

    def spend(
        self,
        instance: str,
        calls: int = 1,
        *,
        limit: int | None = None,
        now: datetime | None = None,
        account: str | None = None,
        account_limit: int | None = None,
    ) -> int:
        """Atomically add ``calls`` to today's counter of ``instance`` (and of ``account`` on it).

        :param instance: Marketo instance identity (e.g. the munchkin id or REST host).
        :param calls: calls about to be made (>= 0).
        :param limit: daily limit; when ``used + calls`` would exceed it nothing is added.
        :param now: the current time (aware); defaults to the clock.
        :param account: the account the calls are made for (counted per account too).
        :param account_limit: the account's daily cap (its share); when the account's ``used + calls`` would exceed
            it nothing is added to either counter.
        :return: calls used today after the spend.
        :raises BudgetExhausted: (a :class:`QuotaExhausted`) the spend would exceed ``limit``.
        :raises ShareExhausted: (a :class:`BudgetExhausted`) the spend would exceed ``account_limit``.
        """
        if calls < 0:
            raise ValueError("calls must be >= 0; use refund() to give calls back")
        day = marketo_day(now)
        stamp = utcnow()
        keys = {"instance": instance, "day": day}
        try:
            with self._db.write_tx() as conn:
                used = self._bump(conn, CallBudgetDay, keys, calls, limit, stamp)
                if used is None:
                    current = self._used_in(conn, CallBudgetDay, keys)
                elif account is not None:
                    mine = self._bump(conn, AccountCallDay, {**keys, "account": account}, calls, account_limit, stamp)
                    if mine is None:
                        raise _ShareStop(self._used_in(conn, AccountCallDay, {**keys, "account": account}))
        except _ShareStop as stop:
            assert account is not None
            assert account_limit is not None
            resets = next_reset(now)
            raise ShareExhausted(
                f"account {account!r} has spent its daily_budget_share of Marketo instance {instance}: {stop.used} of "
                f"{account_limit} calls on {day.isoformat()} (America/Chicago); its load stopped so the other accounts "
                f"keep their share, and the rest waits for the next run after midnight America/Chicago "
                f"({resets.isoformat()}). Raise daily_budget_share in the accounts config to give it more",
                account=account,
                instance=instance,
                used=stop.used,
                limit=account_limit,
                resets_at=resets,
            ) from None
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

    def _bump(
        self, conn: Any, table: Any, keys: dict[str, Any], calls: int, limit: int | None, stamp: datetime
    ) -> int | None:
        """Add ``calls`` to the counter row of ``keys`` (made at ``calls`` if new) unless that would pass ``limit``:
        one upsert, so a spend is two statements (the instance, the account), not four; the count after, or None."""
        if limit is not None and calls > limit:
            return None
        stmt = self._db.insert(table).values(**keys, used=calls, updated_at=stamp)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.__table__.c[k] for k in keys],
            set_={"used": table.used + calls, "updated_at": stamp},
            where=None if limit is None else table.used + calls <= limit,
        )
        used = conn.execute(stmt.returning(table.used)).scalar_one_or_none()
        return None if used is None else int(used)

    @staticmethod
    def _used_in(conn: Any, table: Any, keys: dict[str, Any]) -> int:
        where = [table.__table__.c[k] == v for k, v in keys.items()]
        return int(conn.execute(select(table.used).where(*where)).scalar_one_or_none() or 0)

    def used_by_accounts(self, instance: str, *, now: datetime | None = None) -> dict[str, int]:
        """Calls spent on ``instance`` today per account (accounts without calls today are absent)."""
        day = marketo_day(now)
        stmt = select(AccountCallDay.account, AccountCallDay.used).where(
            AccountCallDay.instance == instance, AccountCallDay.day == day
        )
        with self._db.read_tx() as conn:
            return {str(a): int(n) for a, n in conn.execute(stmt)}

    def used(self, instance: str, *, now: datetime | None = None) -> int:
        """Calls spent on ``instance`` during the Marketo day containing ``now``."""
        day = marketo_day(now)
        with self._db.read_tx() as conn:
            value = conn.execute(
                select(CallBudgetDay.used).where(CallBudgetDay.instance == instance, CallBudgetDay.day == day)
            ).scalar_one_or_none()
        return int(value or 0)

    def refund(self, instance: str, calls: int = 1, *, now: datetime | None = None, account: str | None = None) -> None:
        """Give back ``calls`` Marketo did not count (errors 601/602/604/605/608/611); never goes below zero."""
        if calls <= 0:
            return
        day = marketo_day(now)
        with self._db.write_tx() as conn:
            if account is not None:
                conn.execute(
                    update(AccountCallDay)
                    .where(
                        AccountCallDay.instance == instance,
                        AccountCallDay.day == day,
                        AccountCallDay.account == account,
                    )
                    .values(
                        used=case((AccountCallDay.used >= calls, AccountCallDay.used - calls), else_=0),
                        updated_at=utcnow(),
                    )
                )
            conn.execute(
                update(CallBudgetDay)
                .where(CallBudgetDay.instance == instance, CallBudgetDay.day == day)
                .values(
                    used=case((CallBudgetDay.used >= calls, CallBudgetDay.used - calls), else_=0),
                    updated_at=utcnow(),
                )
            )
