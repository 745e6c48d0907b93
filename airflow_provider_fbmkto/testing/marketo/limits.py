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

from airflow_provider_fbmkto.testing.marketo.exceptions import (
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
        rate_limit: int,
        window_seconds: float,
        max_concurrency: int,
        daily_quota: int,
        count_rejected: bool = True,
    ) -> None:
        self._clock = clock
        self.rate_limit = rate_limit
        self.window_seconds = window_seconds
        self.max_concurrency = max_concurrency
        self.daily_quota = daily_quota
        self.count_rejected = count_rejected
        self._lock = threading.Lock()
        self._window: deque[datetime] = deque()
        self._in_flight = 0
        self._usage: dict[date, int] = {}

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
            if self._usage.get(day, 0) >= self.daily_quota:
                raise DailyQuotaReached()
            self._window.append(now)
            self._usage[day] = self._usage.get(day, 0) + 1
            self._in_flight += 1
            return now

    def _count_rejected(self, now: datetime) -> None:
        if self.count_rejected:
            self._window.append(now)
            day = quota_day(now)
            self._usage[day] = self._usage.get(day, 0) + 1

    def release(self, admitted_at: datetime, *, refund_quota: bool) -> None:
        """End an admitted call; ``refund_quota`` when its answer carries a quota-exempt code."""
        with self._lock:
            self._in_flight -= 1
            if refund_quota:
                day = quota_day(admitted_at)
                self._usage[day] = max(0, self._usage.get(day, 0) - 1)

    def used_today(self) -> int:
        with self._lock:
            return self._usage.get(quota_day(self._clock()), 0)

    def usage(self) -> dict[date, int]:
        with self._lock:
            return dict(self._usage)

    def in_window(self) -> int:
        with self._lock:
            horizon = self._clock() - timedelta(seconds=self.window_seconds)
            return sum(1 for t in self._window if t > horizon)

    def reset(self) -> None:
        with self._lock:
            self._window.clear()
            self._usage.clear()
