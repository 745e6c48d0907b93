"""Process-wide shared state of a Marketo instance: rate limiter and quota stop (tokens: ``marketo_auth``).

Marketo's limits are per *instance* (100 calls per 20 s sliding window, 10 calls in flight, 50,000 a day),
shared by every client of that instance. Inside one process every :class:`MarketoHook` of an instance uses
the same :class:`MarketoRateLimiter` and the same cached token (registries keyed by instance, guarded by
locks). Across processes the daily budget lives in the state DB, and concurrency is capped by an Airflow
pool (see :mod:`airflow_provider_fbmkto.hooks.marketo`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from airflow_provider_fbmkto.hooks.marketo_auth import TOKENS
from airflow_provider_fbmkto.state.budget import next_reset

Clock = Callable[[], float]


class MarketoRateLimiter:
    """A sliding-window limiter (``calls_per_window`` calls per ``window_seconds``) plus a concurrency cap.

    Use :meth:`slot` around each call (the slot is taken just before the request is sent). Marketo counts a
    call in its 100-per-20-s window when the call *arrives*; this limiter counts each call at its **answer**,
    the first moment this side knows for certain that it has arrived, and a call still **in flight** holds its
    place whatever its age. A place is free again ``window_seconds`` after that moment. So at any send, the
    calls Marketo still counts (arrived less than ``window_seconds`` before the new call arrives, which is at or
    after its send) are all among the ones this limiter counts, fewer than ``calls_per_window``: no 606 from
    this process, however long its requests take to reach Marketo. (Counting from a guessed arrival, a fixed
    margin after the send, held each place a little less long, but a call slower than the margin to reach the
    server -- an emulator thread starved of CPU did it -- then counts in Marketo's window after it left this
    one's: a 606.)

    Slots are re-entrant per thread: a call made while the thread already holds one (the token fetch
    evaluated inside a REST call's slot) takes a window place but no second concurrency place, so it can
    never deadlock waiting for itself.
    """

    def __init__(
        self,
        calls_per_window: int,
        window_seconds: float,
        max_concurrency: int,
        *,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.calls_per_window = calls_per_window
        self.window_seconds = window_seconds
        self.max_concurrency = max_concurrency
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        #: one entry per call in the window: ``[answered]``, ``inf`` while the call is in flight
        self._entries: list[list[float]] = []
        self._paused_until = 0.0
        self._concurrency = threading.BoundedSemaphore(max_concurrency)
        self._local = threading.local()
        self._in_flight = 0
        #: the most slots held at once so far (for tests and the benchmark)
        self.max_in_flight = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a concurrency place (unless this thread already does) and a place in the rate window."""
        depth: int = getattr(self._local, "depth", 0)
        if depth == 0:
            self._concurrency.acquire()
            with self._lock:
                self._in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self._in_flight)
        self._local.depth = depth + 1
        entry: list[float] | None = None
        try:
            entry = self._take_window_place()
            yield
        finally:
            with self._lock:
                if entry is not None:
                    entry[0] = self._clock()
                if depth == 0:
                    self._in_flight -= 1
            self._local.depth = depth
            if depth == 0:
                self._concurrency.release()

    def _take_window_place(self) -> list[float]:
        while True:
            with self._lock:
                now = self._clock()
                self._prune(now)
                wait = self._paused_until - now
                if len(self._entries) >= self.calls_per_window:
                    oldest = min(e[0] for e in self._entries)
                    # every place is held by a call still in flight: look again shortly
                    wait = max(wait, oldest + self.window_seconds - now if oldest != math.inf else 0.02)
                if wait <= 0:
                    entry = [math.inf]
                    self._entries.append(entry)
                    return entry
            self._sleep(wait)

    def _prune(self, now: float) -> None:
        horizon = now - self.window_seconds
        self._entries = [e for e in self._entries if e[0] > horizon]

    def window_remaining(self) -> float:
        """Seconds until the oldest call of the current window ages out (a full window when none is in it)."""
        with self._lock:
            now = self._clock()
            self._prune(now)
            counted = [e[0] for e in self._entries if e[0] != math.inf]
            if not counted:
                return self.window_seconds
            return max(0.0, min(counted) + self.window_seconds - now)

    def pause(self, seconds: float) -> None:
        """Hold every new call of this instance for ``seconds`` (after Marketo answered 606/615/429)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)


_registry_lock = threading.Lock()
_limiters: dict[str, MarketoRateLimiter] = {}


def limiter_for(
    instance: str, calls_per_window: int, window_seconds: float, max_concurrency: int
) -> MarketoRateLimiter:
    """The process-wide limiter of ``instance``; the first hook of an instance sets its limits."""
    with _registry_lock:
        limiter = _limiters.get(instance)
        if limiter is None:
            limiter = _limiters[instance] = MarketoRateLimiter(calls_per_window, window_seconds, max_concurrency)
        return limiter


_quota_lock = threading.Lock()
_quota_stop: dict[str, datetime] = {}


def stop_until_reset(instance: str) -> datetime:
    """Remember that ``instance`` answered 607: nothing is sent to it from this process until the reset."""
    until = next_reset()  # Marketo's quota day ends at midnight US/Central
    with _quota_lock:
        _quota_stop[instance] = until
    return until


def quota_stopped(instance: str) -> bool:
    with _quota_lock:
        until = _quota_stop.get(instance)
        if until is not None and datetime.now(timezone.utc) >= until:
            del _quota_stop[instance]
            return False
        return until is not None


def reset_process_state() -> None:
    """Forget every limiter, cached token and quota stop of this process (tests; emulators reuse ports)."""
    with _registry_lock:
        _limiters.clear()
    with _quota_lock:
        _quota_stop.clear()
    TOKENS.clear()


# -- the instance's usage today (every integration) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiUsage:
    """Marketo's count of the day's REST calls on the instance (``GET /rest/v1/stats/usage.json``).

    :param day: the day Marketo counted (its quota day, US Central), when it said.
    :param total: calls today by every API user of the instance (all integrations, this one included).
    :param users: ``{userId: calls}`` as Marketo listed them.
    :param api_user: this connection's API user (the token's ``scope``), when known.
    """

    day: date | None
    total: int
    users: Mapping[str, int] = field(default_factory=dict)
    api_user: str | None = None

    @property
    def mine(self) -> int | None:
        """This connection's API user's calls today, or None when Marketo did not list it (or it is unknown)."""
        return self.users.get(self.api_user) if self.api_user else None

    @property
    def others(self) -> int | None:
        """Calls today by every other API user (other integrations), when :attr:`mine` is known."""
        mine = self.mine
        return None if mine is None else max(0, self.total - mine)

    @classmethod
    def from_marketo(cls, result: Sequence[Any], *, api_user: str | None = None) -> ApiUsage:
        """Read ``result``: one ``{date, total, users: [{userId, count}]}`` entry (only ``date`` is required by
        Marketo's schema: a missing ``total`` is the sum of ``users``; no entry is a day without calls)."""
        entry = next((e for e in result if isinstance(e, Mapping)), None)
        if entry is None:
            return cls(None, 0, {}, api_user)
        users: dict[str, int] = {}
        for item in entry.get("users") or []:
            if isinstance(item, Mapping) and item.get("userId") is not None:
                users[str(item["userId"])] = users.get(str(item["userId"]), 0) + _count(item.get("count"))
        total = _count(entry["total"]) if entry.get("total") is not None else sum(users.values())
        return cls(_day(entry.get("date")), max(total, sum(users.values())), users, api_user)


def _count(raw: Any) -> int:
    try:
        return max(0, int(raw))
    except (TypeError, ValueError):
        return 0


def _day(raw: Any) -> date | None:
    # Marketo documents the field as a date-time and shows "2015-10-17": take the date part of either.
    try:
        return date.fromisoformat(str(raw)[:10])
    except ValueError:
        return None


def calls_left_today(instance_used: int, *, daily_budget: int, budget_reserve: int = 0, own_used: int = 0) -> int:
    """How many calls this run may still spend today on the instance; 0 means stop (pure).

    The budget (``daily_budget - budget_reserve``, the connection's extras) caps the **instance's** calls today,
    every integration together: ``instance_used`` is :attr:`ApiUsage.total` from ``stats/usage.json``.
    ``own_used`` is this provider's own count (the state DB's :meth:`~.budget.CallBudget.used`): taken when it is
    the larger, so calls Marketo's count has not caught up with are never spent twice.

    :param instance_used: calls today on the instance by every API user (>= 0).
    :param daily_budget: the provider's daily budget (> 0).
    :param budget_reserve: calls kept free for other integrations and people (>= 0, < ``daily_budget``).
    :param own_used: calls this provider spent today by its own count (>= 0).
    """
    if min(instance_used, budget_reserve, own_used) < 0 or daily_budget <= 0:
        raise ValueError("calls used and budget_reserve must be >= 0 and daily_budget > 0")
    if budget_reserve >= daily_budget:
        raise ValueError(f"budget_reserve ({budget_reserve}) must be below daily_budget ({daily_budget})")
    return max(0, daily_budget - budget_reserve - max(instance_used, own_used))
