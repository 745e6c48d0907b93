"""Process entry points for the multi-process state tests (spawned; must be importable by name)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from airflow_provider_fbmkto.exceptions import QuotaExhausted
from airflow_provider_fbmkto.state import StateDB


def hold_lock_and_count(url: str, key: str, conn_id: str, counter: str, journal: str, rounds: int) -> None:
    """Under the refresh lock: log enter, read the counter, sleep, write counter + 1, log exit.

    The read-sleep-write is deliberately not atomic: only the lock keeps the final count exact.
    """
    db = StateDB(url, fernet_key=key)
    path = Path(counter)
    for _ in range(rounds):
        with db.tokens.refresh_lock(conn_id, timeout=60):
            _log(journal, f"enter {os.getpid()}")
            value = int(path.read_text() or "0")
            time.sleep(0.01)
            path.write_text(str(value + 1))
            _log(journal, f"exit {os.getpid()}")


def _log(journal: str, line: str) -> None:
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def crash_while_holding(url: str, key: str, conn_id: str, lease_seconds: float) -> None:
    """Take the lock and die without releasing it (like a killed worker)."""
    db = StateDB(url, fernet_key=key)
    with db.tokens.refresh_lock(conn_id, timeout=10, lease_seconds=lease_seconds):
        os._exit(0)


def spend_many(url: str, unlimited: int, limited: int, limit: int) -> tuple[int, int, int]:
    """Spend one call ``unlimited`` times on instance "unlimited", then ``limited`` times against ``limit`` on
    instance "limited"; return (unlimited spends, limited accepted, limited refused)."""
    db = StateDB(url)
    for _ in range(unlimited):
        db.budget.spend("unlimited", 1)
    accepted = refused = 0
    for _ in range(limited):
        try:
            db.budget.spend("limited", 1, limit=limit)
            accepted += 1
        except QuotaExhausted:
            refused += 1
    return unlimited, accepted, refused
