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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

import pendulum

from airflow_provider_fbmkto.hooks.marketo_auth import TOKENS

Clock = Callable[[], float]


class MarketoRateLimiter:
    """A sliding-window limiter (``calls_per_window`` calls per ``window_seconds``) plus a concurrency cap.

    Use :meth:`slot` around each call. A call takes its window place when it starts and keeps it until
    ``window_seconds`` after it *ends*: Marketo counts a call when it arrives, which is somewhere between the
    two, so a place is never freed before Marketo's own window has let the call go, however long the request
    took to travel.

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
        #: one entry per call in the window: ``[end time]``, ``[inf]`` while the call is in flight
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
            ends = [e[0] for e in self._entries if e[0] != math.inf]
            if not ends:
                return self.window_seconds
            return max(0.0, min(ends) + self.window_seconds - now)

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


def next_marketo_midnight(now: datetime | None = None) -> datetime:
    """The next midnight US/Central (when Marketo's daily quota resets), in UTC."""
    current = pendulum.instance(now or datetime.now(timezone.utc)).in_timezone("America/Chicago")
    return current.add(days=1).start_of("day").in_timezone("UTC")


def stop_until_reset(instance: str) -> datetime:
    """Remember that ``instance`` answered 607: nothing is sent to it from this process until the reset."""
    until = next_marketo_midnight()
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
