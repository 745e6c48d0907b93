"""Access tokens and the instance-wide call limits: sliding rate window, concurrency, daily quota.

Every value of time comes from the injected clock (aware UTC ``datetime``), so tests can move time.
The daily quota resets at midnight US Central, as Marketo's does.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Callable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from airflow_provider_fbmkto.testing.marketo.errors import (
    AccessTokenExpired,
    AccessTokenInvalid,
    ConcurrentAccessLimit,
    DailyQuotaReached,
    RateLimitExceeded,
)

Clock = Callable[[], datetime]
US_CENTRAL = ZoneInfo("America/Chicago")

#: Answers with these codes do not count against the daily quota (Marketo's documented list).
QUOTA_EXEMPT_CODES = frozenset({"601", "602", "604", "605", "608", "611"})


def quota_day(at: datetime) -> date:
    """The quota day ``at`` belongs to: the calendar date in US Central time."""
    return at.astimezone(US_CENTRAL).date()


class TokenStore:
    """Client-credential tokens: one live token at a time, reissued only once it has expired."""

    def __init__(self, clock: Clock, ttl: int) -> None:
        self._clock = clock
        self._ttl = ttl
        self._expiry: dict[str, datetime] = {}
        self._current: str | None = None
        self._lock = threading.Lock()

    def issue(self) -> tuple[str, int]:
        """Return ``(token, expires_in)``: the live token with its remaining whole seconds, or a new one."""
        with self._lock:
            now = self._clock()
            if self._current is not None and self._expiry[self._current] > now:
                remaining = int((self._expiry[self._current] - now).total_seconds())
                return self._current, remaining
            token = f"{uuid.uuid4()}:ab"
            self._expiry[token] = now + timedelta(seconds=self._ttl)
            self._current = token
            return token, self._ttl

    def check(self, token: str | None) -> None:
        """Raise 601 for a missing/unknown token, 602 for an expired one."""
        with self._lock:
            expiry = self._expiry.get(token or "")
            if expiry is None:
                raise AccessTokenInvalid()
            if expiry <= self._clock():
                raise AccessTokenExpired()

    def expire_all(self) -> None:
        """Make every issued token expired now (the next REST call answers 602)."""
        with self._lock:
            now = self._clock()
            for token in self._expiry:
                self._expiry[token] = min(self._expiry[token], now)

    def reset(self) -> None:
        with self._lock:
            self._expiry.clear()
            self._current = None


class Limits:
    """The gate every authenticated REST call passes: 615, then 606, then 607.

    :param count_rejected: when true (the default, like Marketo, which counts every call that reaches
        the API), calls refused with 615 or 606 still enter the rate window and the daily quota.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        api_user: str = "api-user",
        rate_limit: int,
        window_seconds: float,
        max_concurrency: int,
        daily_quota: int,
        count_rejected: bool = True,
    ) -> None:
        self._clock = clock
        self.api_user = api_user
        self.rate_limit = rate_limit
        self.window_seconds = window_seconds
        self.max_concurrency = max_concurrency
        self.daily_quota = daily_quota
        self.count_rejected = count_rejected
        self._lock = threading.Lock()
        self._window: deque[datetime] = deque()
        self._in_flight = 0
        #: calls per quota day and API user: this client's calls and other integrations' (:meth:`spend_other`)
        self._usage: dict[date, dict[str, int]] = {}

    def rate_message(self) -> str:
        return f"Max rate limit '{self.rate_limit}' exceeded with in '{self.window_seconds:g}' secs"

    def admit(self) -> datetime:
        """Admit one call or raise 615/606/607. An admitted call holds a concurrency slot until :meth:`release`."""
        with self._lock:
            now = self._clock()
            horizon = now - timedelta(seconds=self.window_seconds)
            while self._window and self._window[0] <= horizon:
                self._window.popleft()
            if self._in_flight >= self.max_concurrency:
                self._count_rejected(now)
                raise ConcurrentAccessLimit()
            if len(self._window) >= self.rate_limit:
                self._count_rejected(now)
                raise RateLimitExceeded(self.rate_message())
            day = quota_day(now)
            if self._total(day) >= self.daily_quota:
                raise DailyQuotaReached()
            self._window.append(now)
            self._add(day, self.api_user, 1)
            self._in_flight += 1
            return now

    def count_in_window(self) -> None:
        """A call that reached the API but was refused before admission (601/602): Marketo documents those
        codes as not counted in the daily *quota* only, so the strict reading keeps it in the rate window."""
        if self.count_rejected:
            with self._lock:
                self._window.append(self._clock())

    def _total(self, day: date) -> int:
        return sum(self._usage.get(day, {}).values())

    def _add(self, day: date, user: str, calls: int) -> None:
        users = self._usage.setdefault(day, {})
        users[user] = max(0, users.get(user, 0) + calls)

    def _count_rejected(self, now: datetime) -> None:
        if self.count_rejected:
            self._window.append(now)
            self._add(quota_day(now), self.api_user, 1)

    def spend_other(self, calls: int, user_id: str) -> int:
        """Count ``calls`` made today by another API user of the instance (another integration).

        They share the daily quota: calls past it are refused by Marketo (607) and not counted, so at most the
        quota's remainder is added. Other users' calls are not in this client's rate window (they are spread
        over the day). Returns the calls counted.
        """
        if calls < 0:
            raise ValueError("calls must be >= 0")
        if not user_id or user_id == self.api_user:
            raise ValueError(f"user_id must name another API user than this client's ({self.api_user!r})")
        with self._lock:
            day = quota_day(self._clock())
            counted = min(calls, max(0, self.daily_quota - self._total(day)))
            if counted:
                self._add(day, user_id, counted)
            return counted

    def release(self, admitted_at: datetime, *, refund_quota: bool) -> None:
        """End an admitted call; ``refund_quota`` when its answer carries a quota-exempt code."""
        with self._lock:
            self._in_flight -= 1
            if refund_quota:
                self._add(quota_day(admitted_at), self.api_user, -1)

    def used_today(self) -> int:
        """Calls counted today by every API user of the instance."""
        with self._lock:
            return self._total(quota_day(self._clock()))

    def usage(self) -> dict[date, int]:
        """Calls per quota day, every API user together."""
        with self._lock:
            return {day: self._total(day) for day in self._usage}

    def usage_by_user(self, day: date | None = None) -> tuple[date, dict[str, int]]:
        """``(day, {userId: calls})`` of ``day`` (default today, US Central); users with no calls left out."""
        with self._lock:
            day = day or quota_day(self._clock())
            return day, {u: n for u, n in sorted(self._usage.get(day, {}).items()) if n > 0}

    def in_window(self) -> int:
        with self._lock:
            horizon = self._clock() - timedelta(seconds=self.window_seconds)
            return sum(1 for t in self._window if t > horizon)

    def reset(self) -> None:
        with self._lock:
            self._window.clear()
            self._usage.clear()
