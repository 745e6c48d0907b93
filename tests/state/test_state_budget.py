from __future__ import annotations

import multiprocessing
import threading
from datetime import date, datetime, timezone

import pytest
import state_workers

from airflow_provider_fbmkto.exceptions import QuotaExhausted
from airflow_provider_fbmkto.state import BudgetExhausted, StateDB, marketo_day, next_reset

SPAWN = multiprocessing.get_context("spawn")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)


def test_marketo_day_follows_chicago_including_dst() -> None:
    # Winter, CST = UTC-6: Jan 15 00:00 Chicago is 06:00 UTC.
    assert marketo_day(utc(2025, 1, 15, 5, 59)) == date(2025, 1, 14)
    assert marketo_day(utc(2025, 1, 15, 6, 0)) == date(2025, 1, 15)
    assert next_reset(utc(2025, 1, 15, 5, 59)) == utc(2025, 1, 15, 6, 0)
    # Summer, CDT = UTC-5 (DST began 2025-03-09): Mar 10 00:00 Chicago is 05:00 UTC.
    assert marketo_day(utc(2025, 3, 10, 4, 59)) == date(2025, 3, 9)
    assert marketo_day(utc(2025, 3, 10, 5, 0)) == date(2025, 3, 10)
    assert next_reset(utc(2025, 3, 10, 5, 0)) == utc(2025, 3, 11, 5, 0)


def test_spend_used_refund(db: StateDB) -> None:
    now = utc(2025, 6, 2, 15, 0)
    assert db.budget.used("123-ABC-456", now=now) == 0
    assert db.budget.spend("123-ABC-456", now=now) == 1
    assert db.budget.spend("123-ABC-456", 10, now=now) == 11
    assert db.budget.spend("999-XYZ-000", 2, now=now) == 2  # instances are separate
    db.budget.refund("123-ABC-456", 3, now=now)
    assert db.budget.used("123-ABC-456", now=now) == 8
    db.budget.refund("123-ABC-456", 100, now=now)
    assert db.budget.used("123-ABC-456", now=now) == 0  # never negative
    assert db.budget.spend("123-ABC-456", 0, now=now) == 0
    with pytest.raises(ValueError, match="refund"):
        db.budget.spend("123-ABC-456", -1, now=now)


def test_resets_at_chicago_midnight(db: StateDB) -> None:
    before = utc(2025, 1, 15, 5, 59, 59)  # 23:59:59 on Jan 14 in Chicago
    after = utc(2025, 1, 15, 6, 0, 0)  # midnight Jan 15 in Chicago
    assert db.budget.spend("inst", 40, now=before) == 40
    assert db.budget.used("inst", now=after) == 0
    assert db.budget.spend("inst", 5, now=after) == 5
    assert db.budget.used("inst", now=before) == 40


def test_limit_raises_quota_exhausted_without_spending(db: StateDB) -> None:
    now = utc(2025, 1, 15, 12, 0)  # 06:00 Chicago; next reset Jan 16 06:00 UTC
    assert db.budget.spend("inst", 9, limit=10, now=now) == 9
    assert db.budget.spend("inst", 1, limit=10, now=now) == 10
    with pytest.raises(QuotaExhausted) as err:
        db.budget.spend("inst", 1, limit=10, now=now)
    assert isinstance(err.value, BudgetExhausted)
    assert err.value.retryable is False
    assert (err.value.used, err.value.limit) == (10, 10)
    assert err.value.resets_at == utc(2025, 1, 16, 6, 0)
    message = str(err.value)
    assert "10 of 10" in message
    assert "2025-01-16T06:00:00+00:00" in message
    assert "America/Chicago" in message
    assert db.budget.used("inst", now=now) == 10
    # A batch bigger than what is left is refused whole, even on a fresh day.
    with pytest.raises(QuotaExhausted):
        db.budget.spend("inst", 11, limit=10, now=utc(2025, 1, 17, 12, 0))
    assert db.budget.used("inst", now=utc(2025, 1, 17, 12, 0)) == 0


def test_spend_is_atomic_across_threads(db: StateDB) -> None:
    def work() -> None:
        for _ in range(25):
            db.budget.spend("inst")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert db.budget.used("inst") == 200


def test_spend_and_limit_are_atomic_across_processes(db: StateDB, db_url: str) -> None:
    """4 processes x 50 unlimited spends on one instance, and 4 x 40 spends against a limit of 100 on another."""
    db.create_all()
    with SPAWN.Pool(4) as pool:
        results = pool.starmap(state_workers.spend_many, [(db_url, 50, 40, 100)] * 4)
    assert [unlimited for unlimited, _, _ in results] == [50] * 4
    assert db.budget.used("unlimited") == 200
    assert sum(accepted for _, accepted, _ in results) == 100
    assert sum(refused for _, _, refused in results) == 60
    assert db.budget.used("limited") == 100
